"""Pure array ops shared by training, relabeling and ReLabel's label maps: boxes, crops, augmentation.

No module here imports anything else from mlrelabel except other `ops` modules.
"""
