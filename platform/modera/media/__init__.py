"""Media input: safe decoding of user-supplied images into the form the models read."""
