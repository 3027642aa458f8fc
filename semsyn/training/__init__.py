"""One trainer for every generator x discriminator x loss combination (see `semsyn.training.trainer`)."""
