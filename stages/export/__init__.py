"""Export: meshes, videos and the HTML report of a trained generator."""
