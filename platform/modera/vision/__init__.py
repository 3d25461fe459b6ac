"""Image-side signals that sit next to the trained vision model: open_nsfw, occlusion explanations."""
