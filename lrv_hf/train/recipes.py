"""The packaged recipes: `lrv_hf/recipes/<model>/<variant>.yaml` (package data), found by name or by path.

Import-light on purpose: `lrv-hf train --list-recipes` and a mistyped recipe name answer without loading torch.
"""

from importlib import resources
from pathlib import Path

from ..errors import InputError


RECIPES = resources.files("lrv_hf") / "recipes"


def list_recipes() -> list[str]:
    """Names of the packaged recipes (`<model>/<variant>`), sorted."""
    names = []
    for family in RECIPES.iterdir():
        if family.is_dir() and family.name not in ("accelerate", "__pycache__"):
            names += [f"{family.name}/{f.name[:-5]}" for f in family.iterdir() if f.name.endswith(".yaml")]
    return sorted(names)


def recipe_path(name_or_path: str) -> Path:
    """A packaged recipe name (`llava-1.5-7b/lora-v100`) or a YAML file path -> the YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise InputError(f"{path}: recipe file not found")
        return path
    if name_or_path not in list_recipes():
        raise InputError(
            f"{name_or_path}: no such recipe; one of {', '.join(list_recipes())} or a YAML file", "recipe"
        )
    return Path(str(RECIPES / f"{name_or_path}.yaml"))


def recipe_arg(argv: list[str]) -> str | None:
    """The value of `--recipe` in `argv`: read before parsing, since the recipe sets the parser's defaults."""
    recipe = next((value for flag, value in zip(argv, argv[1:]) if flag == "--recipe"), None)
    return next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--recipe=")), recipe)
