"""Build the sandbox's seeded catalogue: ``python -m sparc.sandbox.catalogue.build``.

Deterministic (fixed seed): writes ``catalogue.json.gz`` next to this file. Real captured responses in
``samples/`` are included verbatim (datasets 33, 93, 275; researcher records; 396/426 files); the rest is
generated. Generated file bytes are not stored (see ``content.py``); their digests and S3 object
fields (ETag, encryption, part size) are computed here once (``storage.py``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import string
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sparc.sandbox.catalogue.storage import store_objects

HERE = Path(__file__).resolve().parent
SAMPLES = HERE / "samples"
OUTPUT = HERE / "catalogue.json.gz"
SEED = 20230525
FORMAT = 1

SPARC = ("SPARC Consortium", 367)
NEU = ("Northeastern University", 629)
PENN = ("University of Pennsylvania", 5)
CCBY = "Creative Commons Attribution"
ASSETS = "https://assets.discover.pennsieve.io/dataset-assets"
PUBLISH = "pennsieve-prod-discover-publish-use1"
SPARC4 = "prd-sparc-discover-use1"
SPARC5 = "prd-sparc-discover50-use1"
SPONSOR = {
    "title": "NIH SPARC Program",
    "imageUrl": f"{ASSETS}/sponsorships/sparc_logo.svg",
    "markup": "This dataset is part of the NIH SPARC program.",
}

# extension -> (fileType, packageType, icon)
FILE_TYPES: dict[str, tuple[str, str, str]] = {
    "json": ("Json", "Unsupported", "JSON"),
    "csv": ("CSV", "Tabular", "Tabular"),
    "xlsx": ("MSExcel", "Unsupported", "Excel"),
    "txt": ("Text", "Text", "Text"),
    "md": ("Markdown", "Unsupported", "Generic"),
    "jpg": ("JPEG", "Image", "Image"),
    "tif": ("TIFF", "Image", "Image"),
    "pdf": ("PDF", "PDF", "PDF"),
    "mat": ("MATLAB", "TimeSeries", "Timeseries"),
    "nii": ("NIFTI", "MRI", "ClinicalImageBrain"),
    "edf": ("EDF", "TimeSeries", "Timeseries"),
}
README_TEXT = {  # indexed for search like the real readme (33 is found by "cancer" through it)
    33: "Colon specimens were obtained from patients undergoing anterior resection for colon cancer.",
    93: "DiFC detections of circulating tumor cells in mice with LLC and MM tumors.",
}
GENERIC = ("GenericData", "Unknown", "Generic")

FIRST = ["Amber", "Jaclyn", "Eric", "Nicole", "Donald", "Maria", "Wei", "Lauren", "Rajesh", "Sofia",
         "Hiroshi", "Ana", "David", "Priya", "Tomas", "Grace", "Omar", "Elena", "Kwame", "Julia"]
LAST = ["Williams", "Brennan", "Musselman", "Thompson", "Hoover", "Garcia", "Chen", "Patel", "Novak",
        "Okafor", "Tanaka", "Rossi", "Schmidt", "Kim", "Haddad", "Nguyen", "Larsen", "Silva", "Ivanova"]
DEGREES = ["Ph.D.", "M.D.", "M.S.", "B.S.", None, "M.D., Ph.D."]
ORGANS = ["vagus nerve", "colon", "heart", "stomach", "bladder", "spinal cord", "pancreas", "lung",
          "stellate ganglion", "esophagus"]
SPECIES = ["rat", "mouse", "pig", "human", "ferret", "cat"]
METHODS = ["microCT", "immunohistochemistry", "electrophysiology", "calcium imaging",
           "single cell RNA-seq", "tract tracing", "MRI", "optogenetics", "manometry", "confocal"]


@dataclass
class FileSpec:
    """One file of a dataset version (path relative to the version root)."""

    path: str
    size: int
    content: str | None = None
    seed: int | None = None
    source_package_id: str | None = None
    s3_version: str | None = None
    created_at: str | None = None
    types: tuple[str, str, str] | None = None
    sha256: str | None = None
    storage: dict[str, Any] | None = None  # the S3 object: md5, etag, sse, partSize, lastModified

    def entry(self) -> dict[str, Any]:
        ext = self.path.rsplit(".", 1)[-1].lower() if "." in self.path else ""
        file_type, package_type, icon = self.types or FILE_TYPES.get(ext, GENERIC)
        out: dict[str, Any] = {
            "path": self.path, "size": self.size, "fileType": file_type, "packageType": package_type,
            "icon": icon, "sourcePackageId": self.source_package_id, "createdAt": self.created_at,
            "s3Version": self.s3_version, "sha256": self.sha256,
        }
        out.update(self.storage or {})
        if self.content is not None:
            out["content"] = self.content
        else:
            out["seed"] = self.seed
        return out


@dataclass
class Version:
    """A published dataset version: its DTO and files."""

    dto: dict[str, Any]
    files: list[FileSpec] = field(default_factory=list)
    readme: str = ""


class Builder:
    """Generates the catalogue deterministically from ``SEED``."""

    def __init__(self, seed: int = SEED) -> None:
        self.rng = random.Random(seed)
        self.versions: list[Version] = []
        self.identities: dict[int, dict[str, Any]] = {}
        self.tombstones: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []

    # ---- small generators -------------------------------------------------------------------
    def orcid(self) -> str:
        digits = [self.rng.randrange(10) for _ in range(15)]
        total = 0
        for d in digits:
            total = (total + d) * 2
        check = (12 - total % 11) % 11
        s = "".join(map(str, digits)) + ("X" if check == 10 else str(check))
        return "-".join(s[i:i + 4] for i in range(0, 16, 4))

    def doi(self) -> str:
        alphabet = string.ascii_lowercase + string.digits
        part = lambda: "".join(self.rng.choice(alphabet) for _ in range(4))  # noqa: E731
        return f"10.26275/{part()}-{part()}"

    def package_id(self) -> str:
        return f"N:package:{uuid.UUID(int=self.rng.getrandbits(128), version=4)}"

    def s3_version(self) -> str:
        return "".join(self.rng.choice(string.ascii_letters + string.digits + "._") for _ in range(32))

    def stamp(self, base: datetime) -> str:
        return base.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.rng.randrange(10**6):06d}Z"

    def person(self) -> dict[str, Any]:
        return {"firstName": self.rng.choice(FIRST), "middleInitial": self.rng.choice([None, "A", "J", "L"]),
                "lastName": self.rng.choice(LAST), "degree": self.rng.choice(DEGREES), "orcid": self.orcid()}

    def file_seed(self, dataset_id: int, version: int, path: str) -> int:
        digest = hashlib.sha256(f"{SEED}/{dataset_id}/{version}/{path}".encode()).digest()
        return int.from_bytes(digest[:8], "little") >> 1  # fits SQLite INTEGER

    # ---- datasets ---------------------------------------------------------------------------
    def identity(self, dataset_id: int) -> dict[str, Any]:
        """What stays the same across a dataset's versions: owner, contributors, ids, first
        publication (drawn once per dataset)."""
        if dataset_id not in self.identities:
            contributors = [self.person() for _ in range(self.rng.randrange(2, 6))]
            first = datetime(2019, 6, 1, tzinfo=UTC) + timedelta(
                days=self.rng.randrange(1500), seconds=self.rng.randrange(86400))
            self.identities[dataset_id] = {
                "contributors": contributors, "first": first,
                "sourceDatasetId": self.rng.randrange(100, 5000),
                "ownerId": self.rng.randrange(10, 3000)}
        return self.identities[dataset_id]

    def dto(self, dataset_id: int, version: int, name: str, description: str, tags: list[str],
            org: tuple[str, int], bucket: str, schema: str = "4.0", **extra: Any) -> dict[str, Any]:
        who = self.identity(dataset_id)
        owner, first = who["contributors"][0], who["first"]
        published = first + timedelta(days=120 * (version - 1))
        prefix = f"{dataset_id}/" if schema == "5.0" else f"{dataset_id}/{version}/"
        created = self.stamp(published)
        dto: dict[str, Any] = {
            "id": dataset_id, "sourceDatasetId": who["sourceDatasetId"], "name": name,
            "description": description, "ownerId": who["ownerId"],
            "ownerFirstName": owner["firstName"], "ownerLastName": owner["lastName"],
            "ownerOrcid": owner["orcid"], "organizationName": org[0], "organizationId": org[1],
            "license": CCBY, "tags": tags, "version": version, "revision": None, "size": 0,
            "modelCount": [], "fileCount": 0, "recordCount": 0,
            "uri": f"s3://{bucket}/{prefix}", "arn": f"arn:aws:s3:::{bucket}/{prefix}",
            "status": "PUBLISH_SUCCEEDED", "doi": self.doi(),
            "banner": f"{ASSETS}/{dataset_id}/{version}/banner.jpg",
            "readme": f"{ASSETS}/{dataset_id}/{version}/readme.md", "changelog": None,
            "contributors": [dict(c) for c in who["contributors"]],
            "collections": [], "externalPublications": [],
            "sponsorship": SPONSOR if org == SPARC else None, "pennsieveSchemaVersion": schema,
            "createdAt": created, "updatedAt": created, "firstPublishedAt": self.stamp(first),
            "versionPublishedAt": created, "revisedAt": None, "embargo": False,
            "embargoReleaseDate": None, "embargoAccess": None, "datasetType": "research",
        }
        dto.update(extra)
        return dto

    def add(self, dto: dict[str, Any], files: list[FileSpec], models: dict[str, int] | None = None,
            manifest_size: int | None = None) -> Version:
        """Register a version: fill seeds, ``manifest.json``, records and the DTO's counts."""
        version = Version(dto, files)
        for spec in files:
            if spec.content is None and spec.seed is None:
                spec.seed = self.file_seed(dto["id"], dto["version"], spec.path)
            if dto["pennsieveSchemaVersion"] == "5.0" and spec.s3_version is None:
                spec.s3_version = self.s3_version()
        if models:
            self.add_records(dto, models)
        if models is not None or not dto["modelCount"]:
            counts = {m: n for m, n in (models or {}).items()}
            dto["modelCount"] = [{"modelName": m, "count": n} for m, n in counts.items()]
            dto["recordCount"] = sum(counts.values())
        if not any(f.path == "manifest.json" for f in files):
            files.append(self.manifest(dto, files, manifest_size))
        self.versions.append(version)
        return version

    def manifest(self, dto: dict[str, Any], files: list[FileSpec], target: int | None) -> FileSpec:
        """The version's ``manifest.json`` (listing every file, itself included), padded to ``target``."""
        snake = lambda c: {"first_name": c["firstName"], "last_name": c["lastName"],  # noqa: E731
                           "orcid": c.get("orcid"), "middle_initial": c.get("middleInitial"),
                           "degree": c.get("degree")}
        size = target or 0
        for _ in range(5):
            listing = [{"path": f.path, "size": f.size, "fileType": f.entry()["fileType"],
                        **({"sourcePackageId": f.source_package_id} if f.source_package_id else {}),
                        **({"s3VersionId": f.s3_version} if f.s3_version else {})} for f in files]
            listing.append({"path": "manifest.json", "size": size, "fileType": "Json"})
            doc = {
                "pennsieveDatasetId": dto["id"], "version": dto["version"], "revision": dto["revision"],
                "name": dto["name"], "description": dto["description"],
                "creator": snake({"firstName": dto["ownerFirstName"], "lastName": dto["ownerLastName"],
                                  "orcid": dto["ownerOrcid"]}),
                "contributors": [snake(c) for c in dto["contributors"]],
                "sourceOrganization": dto["organizationName"], "keywords": dto["tags"],
                "datePublished": dto["versionPublishedAt"][:10], "license": dto["license"],
                "@id": dto["doi"], "publisher": "The University of Pennsylvania",
                "@context": "http://schema.org/", "@type": "Dataset",
                "schemaVersion": "http://schema.org/version/3.7/", "files": listing,
                "pennsieveSchemaVersion": dto["pennsieveSchemaVersion"],
            }
            text = json.dumps(doc, indent=2) + "\n"
            if target:
                if len(text) > target:
                    raise ValueError(f"manifest of {dto['id']} exceeds {target} bytes")
                text += " " * (target - len(text) - 1) + "\n"
            if len(text) == size:
                return FileSpec("manifest.json", size, content=text)
            size = len(text)
        raise RuntimeError("manifest size did not converge")

    def add_records(self, dto: dict[str, Any], models: dict[str, int]) -> None:
        for model, count in models.items():
            for i in range(count):
                self.records.append({"datasetId": dto["id"], "version": dto["version"], "model": model,
                                     "properties": self.record_properties(model, i)})

    def record_properties(self, model: str, i: int) -> dict[str, str]:
        rid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        if model == "researcher":
            p = self.person()
            props = {"hasORCIDId": f"https://orcid.org/{p['orcid']}",
                     "hasAffiliation": self.rng.choice(["University College London", "Duke University",
                                                        "University of California, Los Angeles"]),
                     "middleName": p["middleInitial"] or "", "hasRole": "", "lastName": p["lastName"],
                     "firstName": p["firstName"]}
        elif model == "award":
            props = {"awardId": f"OT2OD{self.rng.randrange(10**5, 10**6)}", "title": "SPARC award",
                     "principalInvestigator": self.rng.choice(LAST)}
        elif model == "animal_subject":
            props = {"localId": f"sub-{i + 1}", "species": self.rng.choice(SPECIES),
                     "sex": self.rng.choice(["Male", "Female"]), "ageCategory": "adult",
                     "weight": f"{self.rng.randrange(200, 500)} g"}
        elif model == "sample":
            props = {"localId": f"sam-{i + 1}", "subjectId": f"sub-{i // 2 + 1}",
                     "sampleType": self.rng.choice(["tissue", "slice", "nerve segment"])}
        elif model == "protocol":
            props = {"url": f"https://protocols.io/view/protocol-{self.rng.randrange(10**4)}",
                     "label": "Tissue preparation"}
        else:
            props = {"label": f"{model} {i + 1}", "value": self.rng.choice(ORGANS)}
        props["recordHash"] = hashlib.md5(rid.encode()).hexdigest()
        props["id"] = rid
        return props

    # ---- file trees -------------------------------------------------------------------------
    def text(self, kind: str, size: int, title: str = "") -> str:
        """Plausible text (``kind`` csv/md/txt) of exactly ``size`` bytes."""
        if kind == "csv":
            lines = ["id,label,value,unit,notes\n"] + [
                f"{i},{self.rng.choice(ORGANS)},{self.rng.random() * 100:.3f},um,"
                f"{self.rng.choice(METHODS)}\n" for i in range(1, size // 20 + 2)]
        else:
            lines = [f"# {title or 'README'}\n", "\n"] + [
                f"This folder holds {self.rng.choice(METHODS)} data of the {self.rng.choice(SPECIES)} "
                f"{self.rng.choice(ORGANS)}.\n" for _ in range(size // 40 + 2)]
        out, used = [], 0
        for line in lines:
            if used + len(line) > size - 2:
                break
            out.append(line)
            used += len(line)
        rest = size - used
        if rest:
            out.append(("#" + "-" * (rest - 2) + "\n") if rest >= 2 else "\n")
        return "".join(out)

    def sized(self, paths: list[str], total: int) -> list[FileSpec]:
        """Generated files at ``paths`` whose sizes sum to ``total``."""
        weights = [self.rng.random() + 0.05 for _ in paths]
        scale = total / sum(weights)
        sizes = [max(1, int(w * scale)) for w in weights]
        sizes[-1] += total - sum(sizes)
        return [FileSpec(p, s, source_package_id=self.package_id()) for p, s in zip(paths, sizes, strict=True)]

    def standard_files(self, n_subjects: int, per_subject: int, exts: list[str],
                       size_range: tuple[int, int] = (2_000, 400_000)) -> list[FileSpec]:
        """A SPARC-like ``files/`` tree (dataset_description, subjects, primary/sub-*/...)."""
        files = [FileSpec("files/dataset_description.xlsx", self.rng.randrange(9_000, 40_000)),
                 FileSpec("files/subjects.xlsx", self.rng.randrange(6_000, 20_000)),
                 FileSpec("files/README.md", 0)]
        files[2] = FileSpec("files/README.md", 1200, content=self.text("md", 1200, "Dataset readme"))
        for s in range(1, n_subjects + 1):
            for k in range(per_subject):
                ext = self.rng.choice(exts)
                files.append(FileSpec(f"files/primary/sub-{s}/sam-{k + 1}_{self.rng.choice(METHODS).split()[0]}"
                                      f".{ext}", self.rng.randrange(*size_range)))
        for spec in files:
            spec.source_package_id = spec.source_package_id or self.package_id()
        return files

    # ---- the catalogue ----------------------------------------------------------------------
    def build(self) -> dict[str, Any]:
        self.sample_datasets()
        self.dataset_90()
        self.multi_version_292()
        self.layout50()
        self.deep_318()
        self.mid_size_120()
        self.record_datasets()
        self.generic_datasets()
        from sparc.sandbox.catalogue.zinc_seed import seed_zinc  # 292's scaffold, 107's MBF XML
        seed_zinc(self)
        self.unpublished_150(self.doi())
        self.embargoed_281()  # last: its random draws change nothing seeded before it
        store_objects([(v.dto, f) for v in self.versions for f in v.files])  # hashes, ETags
        datasets = []
        for v in sorted(self.versions, key=lambda v: (v.dto["id"], v.dto["version"])):
            v.dto["fileCount"] = v.dto["fileCount"] or len(v.files)
            v.dto["size"] = v.dto["size"] or sum(f.size for f in v.files)
            datasets.append({"dto": v.dto, "readme": v.readme, "files": [f.entry() for f in v.files]})
        return {"format": FORMAT, "seed": SEED, "datasets": datasets, "tombstones": self.tombstones,
                "records": self.records, "downloads": self.downloads()}

    def unpublished_150(self, latest_doi: str) -> None:
        """150: two versions, both UNPUBLISHED (unpublishing marks every published version so, see
        discover-service PublishHandler.scala:809-813), each with its TombstoneDTO."""
        name, tags = "Retracted: vagal afferent mapping", ["vagus", "retracted"]
        updated = "2022-03-14T10:02:11.551203Z"  # the dataset's updatedAt, shared by its tombstones
        for version in (1, 2):
            dto = self.dto(150, version, name, "Afferent projections of the rat vagus (withdrawn).", tags,
                           SPARC, SPARC4, status="UNPUBLISHED")
            if version == 2:
                dto["doi"] = latest_doi
            self.add(dto, [FileSpec("files/README.md", 600, content=self.text("md", 600, name))], {})
            self.tombstones.append({"id": 150, "version": version, "name": name, "tags": tags,
                                    "status": "UNPUBLISHED", "doi": dto["doi"], "updatedAt": updated})

    def downloads(self) -> list[dict[str, Any]]:
        """Past whole-version downloads (``GET .../download``) for the metrics summary, drawn from
        their own seed so the rest of the catalogue does not shift."""
        rng = random.Random(SEED + 1)
        published = [v.dto for v in self.versions if v.dto["status"] == "PUBLISH_SUCCEEDED"]
        rows = []
        for _ in range(240):
            dto = rng.choice(published)
            day = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(700),
                                                              seconds=rng.randrange(86400))
            rows.append({"datasetId": dto["id"], "version": dto["version"],
                         "origin": rng.choice(["SPARC", "SPARC", "Discover", None]),
                         "downloadedAt": day.strftime("%Y-%m-%dT%H:%M:%SZ")})
        return sorted(rows, key=lambda r: r["downloadedAt"])

    def sample_datasets(self) -> None:
        """93, 33 and 275 verbatim from real responses, with file trees matching count and size."""
        page = json.loads((SAMPLES / "discover-search-datasets_query-cancer_limit-2.json").read_text())
        embargoed = json.loads((SAMPLES / "discover-dataset_embargoed_275.json").read_text())
        for dto in [*page["datasets"], embargoed]:
            models = {m["modelName"]: m["count"] for m in dto["modelCount"]}
            n = dto["fileCount"] - 2  # besides dataset_description.xlsx and manifest.json
            paths = [f"files/primary/sub-{i % 12 + 1}/{dto['id']}_{i:04d}.dat" for i in range(n)]
            files = [FileSpec("files/dataset_description.xlsx", 12_000, source_package_id=self.package_id())]
            files += self.sized(paths, dto["size"] - 12_000 - (200 * n + 5_000))
            target = self.manifest(dto, files, None).size + 64
            files[-1].size += dto["size"] - sum(f.size for f in files) - target
            version = self.add(dto, files, models or None, manifest_size=target)
            version.readme = README_TEXT.get(dto["id"], "")

    def dataset_90(self) -> None:
        """90 v1: files/ sums to 1140301577 (incl. a 1 GiB file), metadata/ to 48774, as captured."""
        dto = self.dto(90, 1, "Spatial distribution of vagal efferent fibers in the rat stomach",
                       "High-resolution recordings and microCT of vagal efferent projections to the "
                       "stomach wall, with derived fiber counts.", ["vagus nerve", "stomach", "microct",
                                                                    "rat"], SPARC, PUBLISH)
        records = {"animal_subject.csv": 702, "award.csv": 3032, "file.csv": 11751, "protocol.csv": 273,
                   "researcher.csv": 2455, "sample.csv": 4425, "summary.csv": 1954, "term.csv": 306}
        files = [FileSpec(f"metadata/records/{n}", s, content=self.text("csv", s)) for n, s in records.items()]
        files.append(FileSpec("metadata/schema.json", 48774 - 24898,
                              content=self.json_text(48774 - 24898)))
        big = [FileSpec("files/primary/sub-1/sam-1/recording_full.dat", 1 << 30),
               FileSpec("files/primary/sub-1/sam-1/recording_segment.dat", 50 * 10**6),
               FileSpec("files/primary/sub-2/sam-1/stack_01.tif", 12_582_912),
               FileSpec("files/derivative/sub-1/fiber_counts.csv", 4096,
                        content=self.text("csv", 4096))]
        small = self.sized([f"files/primary/sub-{s}/sam-{k}/slice_{k:02d}.tif" for s in (1, 2) for k in
                            range(2, 6)] + ["files/dataset_description.xlsx", "files/subjects.xlsx"],
                           1140301577 - sum(f.size for f in big))
        for f in small + big:
            f.source_package_id = f.source_package_id or self.package_id()
        readme = FileSpec("readme.md", 2310, content=self.text("md", 2310, dto["name"]))
        banner = FileSpec("banner.jpg", 48_213)
        revision = FileSpec("revisions/1/manifest.json", 1660, content=self.json_text(1660, revision=1))
        self.add(dto, small + big + files + [readme, banner, revision],
                 {"animal_subject": 4, "award": 1, "protocol": 1, "researcher": 5, "sample": 8,
                  "summary": 1, "term": 3}, manifest_size=19928)

    def json_text(self, size: int, revision: int | None = None) -> str:
        """A JSON document (schema or revision manifest) padded with whitespace to ``size`` bytes."""
        doc: dict[str, Any] = ({"revision": revision, "files": [{"path": "readme.md"}]} if revision else
                               {"models": {m: {"properties": ["id", "label", "localId"]} for m in
                                           ["animal_subject", "award", "file", "protocol", "researcher",
                                            "sample", "summary", "term"]}})
        text = json.dumps(doc, indent=2)
        return text + " " * (size - len(text) - 1) + "\n"

    def multi_version_292(self) -> None:
        """292: three 4.x versions with differing files."""
        name = "Scaffold fitting of the rat stomach"
        base = [FileSpec("files/dataset_description.xlsx", 14_211),
                FileSpec("files/primary/Scaffold_Creator-settings.json", 10_950,
                         content=self.json_text(10_950))]
        for version in (1, 2, 3):
            files = [FileSpec(f.path, f.size, content=f.content) for f in base]
            if version >= 2:
                files.append(FileSpec("files/primary/Scaffold_Creator.exf", 902_114 + version))
                files.append(FileSpec("files/docs/changes.txt", 400 + version,
                                      content=self.text("txt", 400 + version, f"Version {version}")))
            if version == 3:
                files[1] = FileSpec(files[1].path, 11344, content=self.json_text(11344))
                files.append(FileSpec("files/derivative/fit_report.pdf", 215_733))
            for f in files:
                f.source_package_id = self.package_id()
            dto = self.dto(292, version, name, f"Anatomical scaffold of the rat stomach (v{version}).",
                           ["scaffold", "stomach", "rat"], SPARC, SPARC4)
            self.add(dto, files)

    def layout50(self) -> None:
        """396 and 426: publishing 5.0 layout (no version in keys, S3-versioned objects).

        396 has three versions sharing keys: v1 holds the first captured files, v2 adds more and
        rewrites one (a new S3 object version under the same key), v3 is the captured listing.
        Unchanged files keep their object version from one dataset version to the next.
        """
        captured = json.loads((SAMPLES / "discover-search-files_items_sparc-datasets-11-292-396-426.json")
                              .read_text())
        names = {396: ("Scaffold-based registration of the mouse colon", ["colon", "scaffold", "mouse"]),
                 426: ("Stitched vagus nerve segmentations of human cadavers", ["vagus nerve", "human",
                                                                              "segmentation"])}
        for dataset_id, (name, tags) in names.items():
            prefix = f"s3://{SPARC5}/{dataset_id}/"
            files = [FileSpec(item["uri"][len(prefix):], item["size"],
                              source_package_id=item["sourcePackageId"], created_at=item["createdAt"],
                              types=(item["fileType"], item["packageType"], item["icon"]))
                     for item in captured[f"mock_response_project_files_{dataset_id}"]]
            files.append(FileSpec("files/dataset_description.xlsx", 21_330,
                                  source_package_id=self.package_id()))
            if dataset_id == 396:
                first = files[:3]
                rewritten = FileSpec(files[0].path, files[0].size - 17, types=files[0].types,
                                     source_package_id=files[0].source_package_id)
                releases = {1: first + [files[-1]], 2: [rewritten, *first[1:], *files[3:6], files[-1]]}
                for version, subset in releases.items():
                    dto = self.dto(dataset_id, version, name,
                                   f"{name}: curated SDS 3.0 dataset (v{version}).", tags, SPARC,
                                   SPARC5, schema="5.0")
                    self.add(dto, list(subset), {"researcher": 3, "award": 1})
            dto = self.dto(dataset_id, 3, name, f"{name}: curated SDS 3.0 dataset.", tags, SPARC, SPARC5,
                           schema="5.0")
            self.add(dto, files, {"researcher": 3, "award": 1})

    def deep_318(self) -> None:
        """318: a deep tree of 10,000+ small files."""
        dto = self.dto(318, 1, "Serial block-face imaging of the porcine stellate ganglion",
                       "Ten thousand serial image tiles across subjects, samples and runs.",
                       ["stellate ganglion", "pig", "imaging"], SPARC, SPARC4)
        files = [FileSpec("files/dataset_description.xlsx", 18_002)]
        for s in range(1, 41):
            for sam in range(1, 6):
                for run in range(1, 6):
                    for tile in range(1, 11):
                        files.append(FileSpec(f"files/primary/sub-{s:02d}/sam-{sam}/run-{run}/"
                                              f"tile-{tile:04d}.tif", self.rng.randrange(1_024, 8_192)))
        self.add(dto, files, {"animal_subject": 40, "sample": 200})

    def mid_size_120(self) -> None:
        """120: a few mid-size files (1-100 MB) for download tests."""
        dto = self.dto(120, 1, "Vagus nerve stimulation evoked compound action potentials in the pig",
                       "Raw electrophysiology recordings of vagus nerve stimulation in pigs.",
                       ["vagus nerve", "electrophysiology", "pig", "stimulation"], SPARC, SPARC4)
        files = [FileSpec("files/dataset_description.xlsx", 11_200),
                 FileSpec("files/primary/sub-1/ecap_run1.edf", 1_048_576),
                 FileSpec("files/primary/sub-1/ecap_run2.edf", 5_000_000),
                 FileSpec("files/primary/sub-2/ecap_run1.edf", 25 * 2**20),
                 FileSpec("files/primary/sub-2/stimulation_log.csv", 3_500,
                          content=self.text("csv", 3_500)),
                 FileSpec("files/derivative/summary.mat", 100_000_000)]
        for f in files:
            f.source_package_id = self.package_id()
        self.add(dto, files, {"animal_subject": 2, "protocol": 1, "researcher": 2})

    def record_datasets(self) -> None:
        """282-305: SPARC datasets carrying the captured researcher records (verbatim, listed first)."""
        captured = json.loads((SAMPLES / "discover-search-records_model-researcher_org-SPARC.json").read_text())
        self.records[:0] = captured["records"]
        counts: dict[int, int] = {}
        for record in captured["records"]:
            counts[record["datasetId"]] = counts.get(record["datasetId"], 0) + 1
        for dataset_id in (282, 287, 290, 295, 301, 304, 305):
            organ, method = self.rng.choice(ORGANS), self.rng.choice(METHODS)
            dto = self.dto(dataset_id, 1, f"{method.capitalize()} of the {organ} in the "
                           f"{self.rng.choice(SPECIES)}", f"We used {method} to characterize the "
                           f"innervation of the {organ}.", [organ, method.lower()], SPARC, SPARC4)
            files = self.standard_files(self.rng.randrange(2, 5), 3, ["tif", "csv", "mat", "json"])
            self.fill_texts(files)
            self.add(dto, files, {"researcher": 4, "award": 1, "animal_subject": 3, "protocol": 2})
            # the captured records count too
            for m in dto["modelCount"]:
                if m["modelName"] == "researcher":
                    m["count"] += counts.get(dataset_id, 0)
            dto["recordCount"] += counts.get(dataset_id, 0)

    def fill_texts(self, files: list[FileSpec]) -> None:
        """Give small csv/json/txt files real content."""
        for f in files:
            ext = f.path.rsplit(".", 1)[-1]
            if f.content is None and ext in ("csv", "json", "txt") and f.size <= 200_000:
                f.content = self.json_text(f.size) if ext == "json" else self.text(ext, f.size)

    def embargoed_281(self) -> None:
        """281: a second embargoed dataset, one the sandbox user has NOT been granted (403 when
        signed in; 275 is the granted one)."""
        dto = self.dto(281, 1, "Embargoed: pancreatic islet innervation in mouse (access by request)",
                       "Light-sheet images of pancreatic islet innervation; files are under embargo "
                       "until the release date.", ["pancreas", "islet", "light-sheet", "mouse"], SPARC,
                       "pennsieve-prod-discover-embargo-use1", status="EMBARGO_SUCCEEDED",
                       embargo=True, embargoReleaseDate="2027-06-01")
        published = "2024-02-12T15:41:27.302114Z"  # after 275, so the guide's search still finds 275 first
        dto.update(createdAt=published, updatedAt=published, firstPublishedAt=published,
                   versionPublishedAt=published)
        files = self.standard_files(2, 3, ["tif", "csv"])
        self.fill_texts(files)
        self.add(dto, files)

    def generic_datasets(self) -> None:
        """Fill up the catalogue with varied datasets from several organizations."""
        for dataset_id in (12, 43, 55, 61, 77, 108, 137, 200, 221, 350):
            organ, method, species = (self.rng.choice(ORGANS), self.rng.choice(METHODS),
                                      self.rng.choice(SPECIES))
            org = self.rng.choice([SPARC, SPARC, SPARC, NEU, PENN])
            dto = self.dto(dataset_id, 1, f"{method.capitalize()} of {organ} innervation in {species}",
                           f"This dataset contains {method} data from the {organ} of {species} "
                           f"subjects, with subject and sample metadata.",
                           [organ, method.lower(), species], org, SPARC4 if org == SPARC else PUBLISH)
            if dataset_id == 200:
                dto.update(datasetType="collection", name="SPARC vagus nerve collection")
            files = self.standard_files(self.rng.randrange(1, 4), self.rng.randrange(2, 6),
                                        ["tif", "csv", "nii", "txt", "jpg"])
            self.fill_texts(files)
            models = ({"researcher": 2, "sample": 4, "animal_subject": 2} if org == SPARC else None)
            self.add(dto, files, models)


def main() -> None:
    """Write ``catalogue.json.gz`` (deterministic bytes)."""
    catalogue = Builder().build()
    data = json.dumps(catalogue, separators=(",", ":"), ensure_ascii=False).encode()
    OUTPUT.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes, {len(catalogue['datasets'])} versions)")


if __name__ == "__main__":
    main()
