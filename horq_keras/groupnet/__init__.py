"""Group-Net (Zhuang et al., "Structured binary neural networks")."""
