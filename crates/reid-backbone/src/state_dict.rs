//! Reading PyTorch state dicts (`.pth`/`.bin`, legacy and zip) and safetensors, and loading them into a `tch::nn::VarStore` by key name.
