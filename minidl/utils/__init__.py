"""Small helpers shared by the engine and the layers (PyTorch's ``torch.utils`` names)."""
