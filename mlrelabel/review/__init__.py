"""`mlrelabel-review`: a relabel run's proposals as a browser page (`build`, `page`), served on 127.0.0.1
behind a token (`server`), and the decisions applied to the labels (`cli`; `mlrelabel.decisions`)."""
