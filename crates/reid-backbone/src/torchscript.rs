//! TorchScript models (`torch.jit.save`) as backbones.
