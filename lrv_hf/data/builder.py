"""`LRVInstruction`: a `datasets.GeneratorBasedBuilder` over the release files, the images and the dense captions.

It runs locally (datasets >= 4 refuses loading scripts on the Hub) and `lrv_hf.data.export` publishes its Parquet
output. Rows are one per image with the instructions as lists (see `features.py`); keys are the image ids.
"""

import contextlib
import logging
import shutil
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from PIL import Image, UnidentifiedImageError

from ..citation import CITATION as _CITATION
from ..errors import InputError
from .features import FEATURES
from .release import BadRows, image_path, polarity_of, read_instructions, read_regions
from .spool import Spool


logger = logging.getLogger(__name__)


_DESCRIPTION = """\
LRV-Instruction: visual instructions with positive and negative (misleading) instructions at three semantic levels,
generated with GPT-4 from Visual Genome dense captions, for robust instruction tuning against hallucination.
"""

_HOMEPAGE = "https://github.com/FuxiaoLiu/LRV-Instruction"
IMAGES_PER_SHARD = 1000  # the unit of work a parallel build hands to a process


@dataclass
class LRVInstructionConfig(datasets.BuilderConfig):
    """Which release files make a config, where the images and dense captions are, and how to treat bad rows."""

    instruction_files: tuple[str, ...] = field(default=(), metadata={"help": "release JSON files of this config"})
    patterns: tuple[str, ...] = field(default=(), metadata={"help": "file name globs searched in `release_dir`"})
    release_dir: str | None = field(default=None, metadata={"help": "folder holding the release files"})
    images_dir: str | None = field(
        default=None, metadata={"help": "folder of `<image_id>.jpg` (default: <release_dir>/images)"}
    )
    regions_file: str | None = field(default=None, metadata={"help": "vg_annotation.json or region_descriptions.json"})
    split: str = field(default="train", metadata={"help": "name of the split to write"})
    on_bad_rows: str = field(
        default="error", metadata={"help": "'error' stops at the first bad row; 'skip' counts it"}
    )
    max_image_pixels: int | None = field(
        default=None,
        metadata={"help": "larger images are bad (decompression bombs); default: PIL's `Image.MAX_IMAGE_PIXELS`"},
    )

    def __post_init__(self):
        super().__post_init__()
        self.validate()

    def validate(self):
        """Also called by the builder: `datasets` sets keyword overrides on a copy of a predefined config, without
        running `__post_init__` again."""
        if self.on_bad_rows not in ("error", "skip"):
            raise ValueError(f"`on_bad_rows` must be 'error' or 'skip', got {self.on_bad_rows!r}")
        if self.max_image_pixels is not None and (
            isinstance(self.max_image_pixels, bool)
            or not isinstance(self.max_image_pixels, int)
            or self.max_image_pixels < 1
        ):
            raise ValueError(f"`max_image_pixels` must be a positive number of pixels, got {self.max_image_pixels!r}")
        self.instruction_files = tuple(str(f) for f in self.instruction_files)

    def resolve_files(self) -> list[Path]:
        if self.instruction_files:
            return [Path(f) for f in self.instruction_files]
        if self.release_dir is None:
            raise InputError(f"config `{self.name}`: give `instruction_files` or a `release_dir` to search")
        root = Path(self.release_dir)
        files = {p for pattern in self.patterns for p in root.glob(pattern)}
        if self.name != "more":  # filter_cap*.json also matches the extra set, which is a config of its own
            files -= {p for p in files if p.name.startswith("filter_cap_more")}
        files = sorted(files)
        if not files:
            raise InputError(f"{root}: no file matches {', '.join(self.patterns)} for config `{self.name}`")
        return files


@dataclass
class BuildReport:
    """What a build kept, dropped and skipped; published in the dataset card."""

    files: list[str] = field(default_factory=list)
    rows: int = 0
    images: int = 0
    duplicates: int = 0
    duplicate_examples: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    images_without_regions: int = 0


class LRVInstruction(datasets.GeneratorBasedBuilder):
    """LRV-Instruction from the release files. Build it locally, then publish the Parquet (`lrv-hf data build`)."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = LRVInstructionConfig
    BUILDER_CONFIGS = [
        LRVInstructionConfig(
            name="instructions",
            description="the instruction sets (filter_cap*.json: V1 {'annotations': [...]} and the later lists)",
            patterns=("filter_cap*.json",),
        ),
        LRVInstructionConfig(
            name="more",
            description="the extra instruction set (filter_cap_more*.json)",
            patterns=("filter_cap_more*.json",),
        ),
        LRVInstructionConfig(
            name="chart", description="chart instructions; image ids are file names", patterns=("chart*.json",)
        ),
        LRVInstructionConfig(
            name="evaluation",
            description="the 1000-question evaluation set on 120 Visual Genome images (questions only)",
            patterns=("evaluation_set*.json",),
            split="test",
        ),
    ]
    DEFAULT_CONFIG_NAME = "instructions"

    @classmethod
    def default_split(cls, config_name: str) -> str:
        """The split a config writes unless told otherwise (`test` for the evaluation set, else `train`)."""
        return next((c.split for c in cls.BUILDER_CONFIGS if c.name == config_name), "train")

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=FEATURES,
            homepage=_HOMEPAGE,
            citation=_CITATION,
            license="BSD-3-Clause (annotations); Visual Genome images: CC BY 4.0",
        )

    def _split_generators(self, dl_manager):
        config = self.config
        config.validate()
        files = config.resolve_files()
        images_dir = config.images_dir or (Path(config.release_dir) / "images" if config.release_dir else None)
        if images_dir is None:
            raise InputError(f"config `{config.name}`: give `images_dir`", "images_dir")
        if not Path(images_dir).is_dir():
            raise InputError(f"{images_dir}: no such images folder")
        regions_file = config.regions_file
        if regions_file is None and config.release_dir and (Path(config.release_dir) / "vg_annotation.json").is_file():
            regions_file = str(Path(config.release_dir) / "vg_annotation.json")
        self.report = BuildReport(files=[Path(f).name for f in files])  # names only: no local paths in the card
        spool_path, shards = self._spool(files, str(images_dir), regions_file)
        return [
            datasets.SplitGenerator(
                name=config.split,
                # a list of shards: `download_and_prepare(num_proc=N)` hands them out to N processes
                gen_kwargs={"spool_path": spool_path, "shards": shards, "images_dir": str(images_dir)},
            )
        ]

    def _spool(self, files: list[Path], images_dir: str, regions_file: str | None) -> tuple[str, list]:
        """Read and check everything before writing anything: rows, regions, images; fill the report.

        Returns the spool's path and the image-id ranges to generate. Bad rows, missing, corrupt and oversized
        images and conflicting duplicates are errors, or counted skips with `on_bad_rows="skip"`.
        """
        report, bad_rows = self.report, BadRows(self.config.on_bad_rows)
        # beside the build's cache on the same disk, not in the system temp folder: a killed build's spool is
        # removed by the next build of the same config instead of piling up in /tmp
        folder = Path(f"{self._cache_dir}.spool")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        weakref.finalize(self, shutil.rmtree, str(folder), True)  # the main process's builder owns the spool
        spool = Spool(folder / "spool.sqlite")
        try:
            for path in files:
                spool.add_rows(read_instructions(path, bad_rows))
            if regions_file is not None:
                spool.add_regions(read_regions(regions_file))
            spool.drop_images(self._bad_images(spool, images_dir, bad_rows))
            conflicts, examples = spool.conflicts()
            if conflicts:
                message = f"{conflicts} conflicting duplicate row(s): {examples[0]}"
                bad_rows.handle(
                    message + "; set `on_bad_rows` to skip to keep the first answer of each question",
                    reason="conflicting duplicate",
                    count=conflicts,
                    examples=examples,
                )
                spool.drop_conflicts()
            report.duplicates, report.duplicate_examples = spool.count_duplicates()
            if report.duplicates:
                logger.warning(
                    "%d duplicate rows dropped (first: %s)", report.duplicates, "; ".join(report.duplicate_examples)
                )
            report.rows = spool.num_rows - report.duplicates
            report.images = spool.num_images
            with_regions = spool.db.execute("SELECT count(*) FROM regions r JOIN images i USING (image_id)")
            report.images_without_regions = report.images - with_regions.fetchone()[0]
            report.skipped, report.skipped_examples = dict(bad_rows.counts), dict(bad_rows.examples)
            if report.rows == 0:  # an empty dataset is never what was asked for
                reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(report.skipped.items()))
                first = next(iter(report.skipped_examples.values()))[0]
                raise InputError(f"nothing to build: every row was skipped ({reasons}); first: {first}")
            return spool.path, spool.shards(IMAGES_PER_SHARD)
        finally:
            spool.close()

    def _bad_images(self, spool: Spool, images_dir: str, bad_rows: BadRows) -> list[str]:
        """Missing, unreadable or oversized images, found before writing anything so that training and inference
        never meet them, and so that an error names all the missing ids."""
        limit = self.config.max_image_pixels or Image.MAX_IMAGE_PIXELS
        missing, bad = [], []
        with _pixel_limit_off():
            for image_id in spool.image_ids():
                path = image_path(images_dir, image_id)
                if not path.is_file():
                    missing.append(image_id)
                    continue
                try:
                    with Image.open(path) as image:
                        if image.width * image.height > limit:
                            bad.append(image_id)
                            message = (
                                f"{path}: image_id {image_id} has {image.width}x{image.height} pixels, over "
                                f"`max_image_pixels` ({limit:,}); raise it if the image is genuine"
                            )
                            bad_rows.handle(message, reason="image too large")
                            continue
                        # decode: verify() reads the header only, and a half-written JPEG passes it. A JPEG is
                        # decoded at 1/8 scale: all of its data is still read and checked, for half the CPU time
                        image.draft(image.mode, (image.width // 8, image.height // 8))
                        image.load()
                except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
                    bad.append(image_id)
                    bad_rows.handle(f"{path}: corrupt image for image_id {image_id} ({err})", reason="corrupt image")
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            message = f"{images_dir}: {len(missing)} image(s) missing for image_id {shown}"
            if bad_rows.mode == "error":
                raise InputError(message + "; set `on_bad_rows` to skip to leave their rows out", "on_bad_rows")
            for image_id in missing:
                bad_rows.handle(f"{images_dir}: image missing for image_id {image_id}", reason="missing image")
        return missing + bad

    def _generate_examples(self, spool_path: str, shards: list[tuple[str, str]], images_dir: str):
        spool = Spool(spool_path, readonly=True)
        try:
            for first, last in shards:
                for image_id, rows, regions in spool.grouped(first, last):
                    data = image_path(images_dir, image_id).read_bytes()
                    yield image_id, _example(image_id, data, rows, regions or [])
        finally:
            spool.close()


@contextlib.contextmanager
def _pixel_limit_off():
    """PIL refuses to open images over twice its own limit; ours (`max_image_pixels`) is checked instead."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _example(image_id: str, data: bytes, rows: list[tuple], regions: list[dict]) -> dict:
    return {
        "image": {"bytes": data, "path": None},
        "image_id": image_id,
        "question": [r[0] for r in rows],
        "answer": [r[1] for r in rows],
        "task": [r[2] for r in rows],
        "polarity": [polarity_of(r[2]) for r in rows],
        "source": [r[3] for r in rows],
        "reference_answer": [r[5] for r in rows],
        "regions": regions,
    }
