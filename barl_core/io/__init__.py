"""Reading and writing volumes with their exact geometry (SimpleITK), and file checks."""
