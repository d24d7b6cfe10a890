"""The images of the book, in one tensor convention: the synthetic world, the stacked
evaluation sets (STACK-MIX, STACK-GEN), and real images with the authors' release.

Every batch is a float tensor ``(N, 3, 224, 224)`` normalized with the ImageNet mean and
standard deviation (what every model of the book takes); :func:`denormalize` brings it back to
``[0, 1]`` for display. The synthetic world is a pure function of a seed (no image file
anywhere) and works wherever ``$CAMWALLS_HOME`` points; real images and the authors' release are
downloaded into the cache with SHA-256 digests recorded on first download and checked afterwards
(the authors' checkpoints against the digests they published).

* ``transforms`` -- ImageNet normalization, :func:`denormalize`, the paper's torchvision
  transforms;
* ``render`` -- painting the synthetic world's ten classes of objects and its backgrounds;
* ``synthetic`` -- synthetic batches from a seed, placements relative to the wall, the training
  stream, :data:`DATA_VERSION` (part of every checkpoint's cache key);
* ``downloads`` -- files fetched once and checked ever after (the SHA-256 record);
* ``folders`` -- real images: reading files as RGB, checking folders, ImageFolder, Imagenette;
* ``release`` -- the authors' checkpoints (pinned to their published digests) and stack
  folders: what they are, and their checks;
* ``release_sources`` -- getting the release: Google Drive, else the authors' GitHub repository
  (Git LFS checkpoints, the stacks' zip), zips and symbolic links; loading the checkpoints;
* ``stacks`` -- STACK-MIX, STACK-GEN and their stand-ins, and a look at the training images.

``from helpers import data; data.stack_mix(...)`` and ``from helpers.data import stack_mix``
both work: every public name is re-exported here.
"""

from __future__ import annotations

from ..models import AUTHORS_DRIVE_FOLDER, AUTHORS_DRIVE_URL
from .downloads import (
    CHECKSUMS_FILE,
    MissingDataError,
    fetch_file,
    sha256_file,
    verify_or_record,
)
from .folders import (
    DATA_ROOT_ENV,
    IMAGE_EXTENSIONS,
    Conversions,
    FolderReport,
    ImageLoader,
    ImageReadError,
    check_image_folder,
    data_root,
    image_folder,
    imagenette,
    real_dataset,
)
from .release import (
    AUTHORS_CHECKPOINTS,
    AUTHORS_FOLDERS,
    AUTHORS_IMAGE_EXTENSIONS,
    AUTHORS_LFS_COMMIT,
    AUTHORS_PUBLISHED_CHECKPOINTS,
    AUTHORS_REPOSITORY,
    AUTHORS_STACK_IMAGES,
    AUTHORS_STACKS_ZIP,
    AUTHORS_STACKS_ZIP_URL,
    AuthorsReleaseError,
    PublishedFile,
    UnpublishedCheckpointWarning,
    authors_dir,
    authors_lfs_url,
    authors_stack_files,
    validate_authors_checkpoint,
    validate_authors_stack,
    verify_authors_checkpoint,
    verify_authors_release,
)
from .release_sources import (
    AUTHORS_SOURCES,
    authors_checkpoint,
    authors_stack_folder,
    download_authors_release,
    load_authors_model,
    unpack_authors_stacks,
)
from .render import SYNTHETIC_CLASSES, render_synthetic
from .stacks import (
    StackSet,
    stack_gen,
    stack_gen_standin,
    stack_images,
    stack_mix,
    training_examples,
)
from .synthetic import (
    DATA_VERSION,
    FIRST_UNSEEN_ROW,
    SyntheticBatch,
    SyntheticStream,
    check_labels,
    mix_seed,
    placement_groups,
    synthetic_batch,
)
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize,
    eval_transform,
    normalize,
    train_transform,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "FIRST_UNSEEN_ROW",
    "SYNTHETIC_CLASSES",
    "DATA_VERSION",
    "StackSet",
    "SyntheticBatch",
    "normalize",
    "denormalize",
    "render_synthetic",
    "synthetic_batch",
    "mix_seed",
    "SyntheticStream",
    "placement_groups",
    "stack_images",
    "stack_mix",
    "stack_gen",
    "stack_gen_standin",
    "check_labels",
    "training_examples",
    "AUTHORS_DRIVE_FOLDER",
    "AUTHORS_CHECKPOINTS",
    "AUTHORS_FOLDERS",
    "MissingDataError",
    "AuthorsReleaseError",
    "AUTHORS_STACK_IMAGES",
    "AUTHORS_DRIVE_URL",
    "validate_authors_checkpoint",
    "validate_authors_stack",
    "verify_authors_checkpoint",
    "verify_authors_release",
    "AUTHORS_IMAGE_EXTENSIONS",
    "AUTHORS_LFS_COMMIT",
    "AUTHORS_PUBLISHED_CHECKPOINTS",
    "AUTHORS_REPOSITORY",
    "AUTHORS_STACKS_ZIP",
    "AUTHORS_STACKS_ZIP_URL",
    "AUTHORS_SOURCES",
    "PublishedFile",
    "UnpublishedCheckpointWarning",
    "authors_lfs_url",
    "authors_stack_files",
    "authors_stack_folder",
    "unpack_authors_stacks",
    "ImageReadError",
    "authors_dir",
    "CHECKSUMS_FILE",
    "sha256_file",
    "verify_or_record",
    "fetch_file",
    "download_authors_release",
    "authors_checkpoint",
    "load_authors_model",
    "ImageLoader",
    "Conversions",
    "FolderReport",
    "IMAGE_EXTENSIONS",
    "DATA_ROOT_ENV",
    "check_image_folder",
    "train_transform",
    "eval_transform",
    "image_folder",
    "imagenette",
    "data_root",
    "real_dataset",
]
