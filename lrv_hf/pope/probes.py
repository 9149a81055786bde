"""POPE probe sets: balanced yes/no "Is there a <object> in the image?" questions built from object annotations.

Present objects give the "yes" probes; absent ones give the "no" probes, sampled the three ways of Li et al. (2023):
`random` (any absent object), `popular` (the most frequent absent objects) and `adversarial` (the absent objects that
most often co-occur with the image's objects).
"""

import json
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.jsonstream import iter_records, top_level_kind
from ..errors import InputError


STRATEGIES = ("random", "popular", "adversarial")
QUESTION_TEMPLATE = "Is there {object} in the image?"  # POPE's template, with the article chosen per object

# "a"/"an" follows the sound, not the letter; these prefixes are the common English exceptions to the letter rule
_VOWEL_LETTER_CONSONANT_SOUND = ("uni", "use", "usu", "uten", "eu", "one", "once", "ewe", "ufo", "ukulele", "urin")
_SILENT_H = ("hour", "honest", "honor", "honour", "heir")
_EDGE_PUNCTUATION = " \t\n\r.,;:!?\"'()[]{}"


def normalize_object_name(name: str) -> str:
    """Lowercase, collapse inner whitespace and drop edge punctuation: `" Red  Apple."` -> `"red apple"`."""
    return re.sub(r"\s+", " ", name.lower()).strip(_EDGE_PUNCTUATION)


def object_key(name: str) -> str:
    """The name with a simple plural on its last word made singular, used only to decide *presence*.

    Visual Genome names the same thing "tree" in one box and "trees" in another; without this a "no" probe could ask
    about "tree" in an image annotated with "trees". Names shown in questions are never rewritten, because the rule
    is crude ("glasses" -> "glass").
    """
    head, _, last = name.rpartition(" ")
    if len(last) > 4 and last.endswith("ies"):
        last = last[:-3] + "y"
    elif len(last) > 4 and last.endswith(("ches", "shes", "sses", "xes", "zes")):
        last = last[:-2]
    elif len(last) > 3 and last.endswith("s") and not last.endswith(("ss", "us", "is")):
        last = last[:-1]
    return f"{head} {last}" if head else last


def with_article(name: str) -> str:
    """`"apple"` -> `"an apple"`, `"unicorn"` -> `"a unicorn"`, `"hour glass"` -> `"an hour glass"`."""
    vowel_sound = name[:1] in "aeiou" and not name.startswith(_VOWEL_LETTER_CONSONANT_SOUND)
    return f"{'an' if vowel_sound or name.startswith(_SILENT_H) else 'a'} {name}"


def question_for(name: str) -> str:
    """The POPE question for one object name: `"Is there an apple in the image?"`."""
    return QUESTION_TEMPLATE.format(object=with_article(name))


@dataclass
class ProbeConfig:
    """How to build a POPE probe set from object annotations."""

    strategies: tuple[str, ...] = field(default=STRATEGIES, metadata={"help": "negative sampling strategies"})
    num_per_image: int = field(
        default=3, metadata={"help": "positives per image (as in POPE), with as many negatives"}
    )
    seed: int = field(default=0, metadata={"help": "seed of every random choice; the same seed gives the same set"})
    num_images: int | None = field(
        default=None, metadata={"help": "probe a seeded sample of this many images (POPE uses 500); all when unset"}
    )

    def __post_init__(self):
        self.strategies = tuple(self.strategies)
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies:
            raise ValueError(f"`strategies` must be a non-empty subset of {', '.join(STRATEGIES)}, got {unknown}")
        if self.num_per_image < 1:
            raise ValueError(f"`num_per_image` must be at least 1, got {self.num_per_image}")
        if self.num_images is not None and self.num_images < 1:
            raise ValueError(f"`num_images` must be at least 1, got {self.num_images}")


def read_objects(path: str | Path) -> dict[str, list[str]]:
    """Read a Visual Genome `objects.json` (or the synthetic release's) into `{image_id: [object names]}`.

    Each image lists its distinct normalised names in the order they first appear. VG rows are
    `{"image_id", "objects": [{"names": [str], ...}]}`; older VG dumps use `"name": str`, also accepted.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if top_level_kind(path) != "[":
        raise InputError(f"{path}: expected a list of images (Visual Genome objects.json), found an object")
    images: dict[str, list[str]] = {}
    for index, row in enumerate(iter_records(path)):
        where = f"{path}: row {index}"
        if not isinstance(row, dict) or not isinstance(row.get("objects"), list):
            raise InputError(f"{where}: expected an object with an `image_id` and an `objects` list")
        image_id = row.get("image_id", row.get("id"))
        if not isinstance(image_id, (int, str)) or isinstance(image_id, bool) or str(image_id) == "":
            raise InputError(f"{where}: field `image_id` is missing or not an int/string")
        names = images.setdefault(str(image_id), [])
        for j, obj in enumerate(row["objects"]):
            raw = obj.get("names", obj.get("name")) if isinstance(obj, dict) else None
            raw = [raw] if isinstance(raw, str) else raw
            if not isinstance(raw, list) or not raw or not all(isinstance(n, str) for n in raw):
                raise InputError(f"{where}: object {j}: field `names` must be a non-empty list of strings")
            # VG lists synonyms in `names`; the first is the annotator's own word, as POPE uses one name per object
            name = normalize_object_name(raw[0])
            if name and name not in names:
                names.append(name)
    if not images:
        raise InputError(f"{path}: the file holds no images")
    return images


class _Statistics:
    """Object frequencies and co-occurrences over the whole annotation set, counted once per image."""

    def __init__(self, objects: dict[str, list[str]]):
        self.frequency = Counter(name for names in objects.values() for name in names)
        # most frequent first; ties by name so the order never depends on the file's order
        self.by_frequency = sorted(self.frequency, key=lambda n: (-self.frequency[n], n))
        self.key = {name: object_key(name) for name in self.by_frequency}
        self.num_keys = len(set(self.key.values()))
        # the image x name incidence as flat arrays (entry -> name rank, entry -> image): co-occurrence scores are then
        # two bincounts in C; a names x names matrix of Visual Genome's ~75k names would not fit in memory
        self._rank = {name: i for i, name in enumerate(self.by_frequency)}
        self._names = np.fromiter((self._rank[n] for names in objects.values() for n in names), dtype=np.int64)
        self._image = np.repeat(np.arange(len(objects)), [len(names) for names in objects.values()])

    def co_occurrence(self, present: list[str]) -> np.ndarray:
        """`scores[rank]`: for each name (by its rank in `by_frequency`), the number of (image, present name) pairs
        where both are in the image, i.e. its co-occurrence count summed over the present names."""
        is_present = np.zeros(len(self.by_frequency), dtype=bool)
        is_present[[self._rank[n] for n in present]] = True
        overlap = np.bincount(self._image, weights=is_present[self._names])
        return np.bincount(self._names, weights=overlap[self._image], minlength=len(self.by_frequency))


def _negatives(strategy: str, present: list[str], count: int, stats: _Statistics, rng: random.Random) -> list[str]:
    """`count` absent names with distinct keys (no "tree" and "trees"); at least `count` absent keys must exist."""
    taken = {stats.key[n] for n in present}
    chosen = []
    if strategy == "random":
        # rejection sampling over the vocabulary, as POPE does: no list of Visual Genome's ~75k absent names per image
        while len(chosen) < count:
            name = rng.choice(stats.by_frequency)
            if stats.key[name] not in taken:
                chosen.append(name)
                taken.add(stats.key[name])
        return chosen
    if strategy == "popular":
        ranked = stats.by_frequency
    else:
        # adversarial: co-occurrence summed over all the image's objects, so one rare partner cannot outweigh the
        # scene as a whole; a stable sort keeps popularity order among equal scores (and names never seen together)
        order = np.argsort(-stats.co_occurrence(present), kind="stable")
        ranked = (stats.by_frequency[i] for i in order)
    for name in ranked:
        if stats.key[name] not in taken:
            chosen.append(name)
            taken.add(stats.key[name])
            if len(chosen) == count:
                break
    return chosen


def build_probes(objects: dict[str, list[str]], config: ProbeConfig | None = None) -> list[dict]:
    """Build the POPE probe rows for every image (or a seeded sample of `num_images`) and strategy.

    Per image, `n = min(num_per_image, #present, #absent)` objects are asked about with label "yes" and `n` with
    label "no", so every image (and so the set) is balanced; images where `n` is 0 are skipped. The positives are the
    same for all strategies (POPE keeps them fixed and varies only the negatives). Rows alternate yes/no.

    Returns:
        `list[dict]`: rows `{"image_id", "question", "label", "object", "strategy"}`, strategy-major.
    """
    config = config or ProbeConfig()
    stats = _Statistics(objects)
    image_ids = list(objects)
    if config.num_images is not None and config.num_images < len(image_ids):
        chosen = set(random.Random(f"{config.seed}:images").sample(image_ids, config.num_images))
        image_ids = [i for i in image_ids if i in chosen]
    rows = []
    for strategy in config.strategies:
        for image_id in image_ids:
            present = objects[image_id]
            num_absent = stats.num_keys - len({stats.key[n] for n in present})
            count = min(config.num_per_image, len(present), num_absent)
            if count == 0:
                continue
            # string seeds hash with SHA-512, so the choice is the same in every process and Python version
            positives = random.Random(f"{config.seed}:{image_id}:positives").sample(present, count)
            rng = random.Random(f"{config.seed}:{image_id}:{strategy}")
            negatives = _negatives(strategy, present, count, stats, rng)
            for yes, no in zip(positives, negatives):
                for name, label in ((yes, "yes"), (no, "no")):
                    rows.append(
                        {
                            "image_id": image_id,
                            "question": question_for(name),
                            "label": label,
                            "object": name,
                            "strategy": strategy,
                        }
                    )
    return rows


def write_probes(rows: Iterable[dict], path: str | Path) -> int:
    """Write probe rows as JSONL (one object a line); returns the number of rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


@dataclass
class ProbeFile:
    """What `build_probe_file` wrote: `probes` rows on `images` of the `total_images` annotated images."""

    path: Path
    probes: int
    images: int
    total_images: int
    strategies: tuple[str, ...]


def build_probe_file(objects: str | Path, output: str | Path, config: ProbeConfig | None = None) -> ProbeFile:
    """Read an `objects.json`, build the probes `config` asks for and write them to the JSONL file `output`."""
    config = config or ProbeConfig()
    annotations = read_objects(objects)
    rows = build_probes(annotations, config)
    count = write_probes(rows, output)
    images = len({row["image_id"] for row in rows})
    return ProbeFile(Path(output), count, images, len(annotations), config.strategies)
