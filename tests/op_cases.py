"""Per-op policies shared by the backend tests (fused vs Kornia) and the kernel tests (kernel vs
the torch path): one op each, with values that exercise its per-sample parameters and p-gate."""

GEOMETRY_AND_PIXEL_OPS = {
    "crop": [("random_resized_crop", {"size": 32})],
    "crop_upsample_24_to_40": [("random_resized_crop", {"size": [40, 24], "scale": [0.05, 0.5]})],
    "resize": [("resize", {"size": 20})],
    "flip": [("horizontal_flip", {"p": 0.5})],
    "jitter_p": [("color_jitter", {"p": 0.5})],
    "gray": [("grayscale", {"p": 0.5})],
    "blur3": [("gaussian_blur", {"kernel_size": 3, "p": 0.7})],
    "blur7": [("gaussian_blur", {"kernel_size": 7, "sigma": [0.5, 3.0], "p": 1.0})],
    "solarize": [("solarize", {"threshold": 0.4, "p": 0.6})],
    "normalize": [("normalize", {})],
}
