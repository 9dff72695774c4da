"""Model utilities: torchvision backbones with pretrained weights, head and input
adaptation, freezing by module-name patterns."""
