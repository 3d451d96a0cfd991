"""vt_engine: training runner, hooks, optimizers, schedulers, checkpoints, data and distributed training."""

from __future__ import annotations

from vt_engine.checkpoint import (
    IncompatibleKeys,
    find_latest_checkpoint,
    load_checkpoint,
    load_state_dict,
    read_checkpoint,
    save_checkpoint,
)
from vt_engine.config import Config
from vt_engine.data import (
    DefaultSampler,
    InfiniteSampler,
    ResumableSampler,
    build_dataloader,
    default_collate,
    pseudo_collate,
    worker_init_fn,
)
from vt_engine.datasets import (
    AspectRatioGroupedDataset,
    DatasetCatalog,
    Metadata,
    MetadataCatalog,
    RepeatFactorTrainingSampler,
    SkipBadSamplesDataset,
    coco_category_subset,
    load_coco_json,
    load_coco_panoptic_json,
    load_sem_seg,
    merge_to_panoptic,
    panoptic_stuff_label_map,
    register_coco_instances,
)
from vt_engine.detection import (
    DetectionDatasetMapper,
    DetectionModel,
    MapDataset,
    annotations_to_instances,
    create_keypoint_hflip_indices,
    keypoint_hflip_indices,
    read_sem_seg,
    transform_instance_annotations,
    trivial_batch_collator,
)
from vt_engine.dist import (
    all_gather_object,
    all_reduce,
    barrier,
    broadcast,
    broadcast_object,
    collect_results,
    get_local_rank,
    get_rank,
    get_world_size,
    init_dist,
    is_distributed,
    is_main_process,
    launch,
)
from vt_engine.evaluator import Evaluator, MetricLike
from vt_engine.hooks import (
    CheckpointHook,
    DistSamplerSeedHook,
    EMAHook,
    EmptyCacheHook,
    EventStorageHook,
    Hook,
    IterTimerHook,
    LoggerHook,
    ParamSchedulerHook,
    Priority,
    RuntimeInfoHook,
    SegVisualizationHook,
)
from vt_engine.loops import EpochBasedTrainLoop, IterBasedTrainLoop, TestLoop, ValLoop
from vt_engine.message_hub import HistoryBuffer, MessageHub
from vt_engine.model import BaseModel, DistributedDataParallel, parse_losses
from vt_engine.optim_constructors import (
    DefaultOptimWrapperConstructor,
    ForceDefaultOptimWrapperConstructor,
    LayerDecayOptimizerConstructor,
    LearningRateDecayOptimizerConstructor,
    build_optim_wrapper,
)
from vt_engine.optim_wrapper import AmpOptimWrapper, OptimWrapper
from vt_engine.registry import (
    HOOKS,
    OPTIM_WRAPPER_CONSTRUCTORS,
    OPTIM_WRAPPERS,
    OPTIMIZERS,
    PARAM_SCHEDULERS,
)
from vt_engine.runner import Runner, get_rng_state, set_random_seed, set_rng_state
from vt_engine.schedulers import (
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    OneCycleLR,
    ParamScheduler,
    PolyLR,
    build_param_schedulers,
)
from vt_engine.synthetic_shapes import SyntheticShapes, synthetic_shapes
from vt_engine.visualization import LocalVisBackend, TensorboardVisBackend, Visualizer, get_palette

__version__ = "0.1.0"

__all__ = [
    # detection glue
    "DetectionDatasetMapper",
    "DetectionModel",
    "MapDataset",
    "annotations_to_instances",
    "create_keypoint_hflip_indices",
    "keypoint_hflip_indices",
    "read_sem_seg",
    "transform_instance_annotations",
    "trivial_batch_collator",
    # embedded dataset
    "SyntheticShapes",
    "synthetic_shapes",
    # runner and loops
    "Runner",
    "Config",
    "EpochBasedTrainLoop",
    "IterBasedTrainLoop",
    "ValLoop",
    "TestLoop",
    "BaseModel",
    "DistributedDataParallel",
    "parse_losses",
    "Evaluator",
    "MetricLike",
    "MessageHub",
    "HistoryBuffer",
    "set_random_seed",
    "get_rng_state",
    "set_rng_state",
    # hooks
    "Hook",
    "Priority",
    "RuntimeInfoHook",
    "IterTimerHook",
    "LoggerHook",
    "ParamSchedulerHook",
    "CheckpointHook",
    "DistSamplerSeedHook",
    "EMAHook",
    "EmptyCacheHook",
    "EventStorageHook",
    "SegVisualizationHook",
    # optimizers
    "OptimWrapper",
    "AmpOptimWrapper",
    "DefaultOptimWrapperConstructor",
    "ForceDefaultOptimWrapperConstructor",
    "LearningRateDecayOptimizerConstructor",
    "LayerDecayOptimizerConstructor",
    "build_optim_wrapper",
    # schedulers
    "ParamScheduler",
    "LinearLR",
    "ConstantLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "PolyLR",
    "OneCycleLR",
    "build_param_schedulers",
    # checkpoints
    "save_checkpoint",
    "load_checkpoint",
    "load_state_dict",
    "read_checkpoint",
    "find_latest_checkpoint",
    "IncompatibleKeys",
    # data
    "ResumableSampler",
    "DefaultSampler",
    "InfiniteSampler",
    "build_dataloader",
    "pseudo_collate",
    "default_collate",
    "worker_init_fn",
    "RepeatFactorTrainingSampler",
    "AspectRatioGroupedDataset",
    "SkipBadSamplesDataset",
    # datasets
    "DatasetCatalog",
    "MetadataCatalog",
    "Metadata",
    "coco_category_subset",
    "load_coco_json",
    "load_coco_panoptic_json",
    "load_sem_seg",
    "merge_to_panoptic",
    "panoptic_stuff_label_map",
    "register_coco_instances",
    # distributed
    "init_dist",
    "launch",
    "is_distributed",
    "get_rank",
    "get_world_size",
    "get_local_rank",
    "is_main_process",
    "barrier",
    "broadcast",
    "broadcast_object",
    "all_reduce",
    "all_gather_object",
    "collect_results",
    # visualization
    "Visualizer",
    "LocalVisBackend",
    "TensorboardVisBackend",
    "get_palette",
    # registries
    "OPTIMIZERS",
    "OPTIM_WRAPPERS",
    "OPTIM_WRAPPER_CONSTRUCTORS",
    "PARAM_SCHEDULERS",
    "HOOKS",
    "__version__",
]
