"""Get the project's assets: copied from a local data folder when it has them, else
downloaded from their public URLs (`spacy project assets`).

    python scripts/fetch_assets.py --data-dir ../shared/data

Each asset of project.yml whose `dest` lies under assets/data/ is looked up at the same
relative path under the data folder (assets/data/goemotions/train.tsv ←
DATA_DIR/goemotions/train.tsv). The environment variable SPACY_MTL_DATA, when set,
overrides --data-dir. A local file is copied only if its MD5 matches the asset's checksum;
a local file with another checksum is an error (better than training on other data
silently). Whatever is still missing is downloaded by weasel, which skips every file
already in place with a matching checksum, so with all files local no download is tried.
At the end, every asset must exist with its checksum, or the command fails.
"""

import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

import typer
from wasabi import msg
from weasel.cli.assets import project_assets
from weasel.util import get_checksum, load_project_config

ENV_VAR = "SPACY_MTL_DATA"
ASSET_ROOT = Path("assets") / "data"


def local_source(asset: Dict[str, Any], data_dir: Path) -> Optional[Path]:
    """Where an asset would be in the local data folder, or None if it is not a data asset.

    asset (Dict[str, Any]): One entry of project.yml's `assets`.
    data_dir (Path): The local copy of the data sets (e.g. ../shared/data).
    RETURNS (Optional[Path]): DATA_DIR/<dest relative to assets/data>, or None.
    """
    dest = Path(asset["dest"])
    try:
        relative = dest.relative_to(ASSET_ROOT)
    except ValueError:
        return None
    return data_dir / relative


def copy_local_assets(project_dir: Path, assets: List[Dict[str, Any]], data_dir: Path) -> List[str]:
    """Copy the assets that the data folder has, checking their MD5 checksums.

    project_dir (Path): The project folder.
    assets (List[Dict[str, Any]]): project.yml's `assets`.
    data_dir (Path): The local copy of the data sets.
    RETURNS (List[str]): The `dest` of every asset copied or already in place.
    """
    done = []
    for asset in assets:
        source = local_source(asset, data_dir)
        if source is None or not source.is_file():
            continue
        dest = project_dir / asset["dest"]
        checksum = asset.get("checksum")
        if checksum and get_checksum(source) != checksum:
            msg.fail(
                f"{source} does not match the checksum of asset {asset['dest']} in "
                f"project.yml ({checksum}): it is not the public file the project expects. "
                f"Replace it, or unset {ENV_VAR} / pass another --data-dir to download.",
                exits=1,
            )
        if dest.is_file() and (not checksum or get_checksum(dest) == checksum):
            done.append(asset["dest"])
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        msg.good(f"Copied {source} → {asset['dest']}")
        done.append(asset["dest"])
    return done


def check_assets(project_dir: Path, assets: List[Dict[str, Any]]) -> List[str]:
    """The `dest` of every asset that is absent or has the wrong checksum."""
    bad = []
    for asset in assets:
        dest = project_dir / asset["dest"]
        checksum = asset.get("checksum")
        if not dest.exists() or (checksum and get_checksum(dest) != checksum):
            bad.append(asset["dest"])
    return bad


def main(
    data_dir: Path = typer.Option(
        Path("../shared/data"),
        "--data-dir",
        "-d",
        help=f"Local copy of the data sets; ${ENV_VAR} overrides it.",
    ),
    project_dir: Path = typer.Option(
        Path.cwd(), "--project-dir", help="The project folder (with project.yml)."
    ),
) -> None:
    """Copy the assets from a local data folder when present, download the rest."""
    if os.environ.get(ENV_VAR):
        data_dir = Path(os.environ[ENV_VAR])
        msg.info(f"Data folder from ${ENV_VAR}: {data_dir}")
    config = load_project_config(project_dir)
    assets = [a for a in config.get("assets", []) if not a.get("extra", False)]
    if data_dir.is_dir():
        done = copy_local_assets(project_dir, assets, data_dir)
        msg.info(f"{len(done)} of {len(assets)} asset(s) in place from {data_dir}")
    else:
        msg.info(f"No local data folder at {data_dir}: downloading the assets")
    if check_assets(project_dir, assets):
        # weasel skips every file already present with a matching checksum.
        project_assets(project_dir)
    bad = check_assets(project_dir, assets)
    if bad:
        msg.fail(
            f"Missing or wrong checksum after download: {', '.join(bad)}. With no network, "
            f"point --data-dir or ${ENV_VAR} at a folder that holds the data sets "
            "(see assets/README.md).",
            exits=1,
        )
    msg.good(f"All {len(assets)} asset(s) in place")


if __name__ == "__main__":
    typer.run(main)
