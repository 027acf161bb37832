"""From a trained model to the device: quantizers, NIR import, program image, build targets."""
