"""Build a benchmark corpus of real third-party source files (>= 150,000) into a directory.

    .venv/bin/python bench/corpus.py DIR [--no-fetch] [--jobs 8]

Sources, all pinned to a version so two runs build the same tree:
  - the local Go module cache (/root/go/pkg/mod, filled by the Kubernetes build) and the Go
    toolchain's own src/ tree, copied;
  - Go module zips from the Go module proxy (proxy.golang.org), the same zips `go mod download`
    fetches (the go.sum check is not repeated here: this is a benchmark corpus, not a build);
  - npm package tarballs from registry.npmjs.org;
  - crates from static.crates.io (the crates.io download endpoint redirects there).
Only files with a source, markup or configuration extension are kept (see SOURCE_EXTENSIONS), so
the corpus is what an indexer of source code would read; binaries and archives are left out.

Layout under DIR: go-mod-cache/, go-src/, go/<module>@<version>/, npm/<name>@<version>/,
crates/<name>-<version>/. Each finished part gets a `.corpus-complete` marker; a re-run skips
every part that has one, so the script is idempotent and a broken fetch is simply re-run.
The directory is benchmark input: never commit it. Nothing here runs on a default code path.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tarfile
import time
import urllib.request
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MARKER = ".corpus-complete"
GO_PROXY = "https://proxy.golang.org"
NPM_REGISTRY = "https://registry.npmjs.org"
CRATES = "https://static.crates.io/crates"
LOCAL_GO_MOD_CACHE = Path("/root/go/pkg/mod")

# Hand-written and generated Go from large projects, chosen for file count (sizes from the proxy
# zips, December 2026). google.golang.org/api and pulumi-aws are left out: few files, tens of MB each.
GO_MODULES = [
    ("github.com/aws/aws-sdk-go", "v1.55.8"),
    ("github.com/cilium/cilium", "v1.20.2"),
    ("code.gitea.io/gitea", "v1.27.3"),
    ("github.com/hashicorp/vault", "v1.21.4"),
    ("github.com/docker/docker", "v28.5.2+incompatible"),
    ("github.com/gohugoio/hugo", "v0.169.0"),
    ("github.com/ethereum/go-ethereum", "v1.17.10"),
    ("github.com/hashicorp/terraform", "v1.13.3"),
    ("github.com/pulumi/pulumi/pkg/v3", "v3.277.0"),
    ("github.com/argoproj/argo-cd/v2", "v2.14.21"),
    ("github.com/containerd/containerd/v2", "v2.4.2"),
    ("sigs.k8s.io/cluster-api", "v1.14.2"),
    ("vitess.io/vitess", "v0.24.4"),
    ("github.com/open-policy-agent/opa", "v1.22.4"),
    ("github.com/oracle/oci-go-sdk/v65", "v65.131.0"),
    ("github.com/aliyun/alibaba-cloud-sdk-go", "v1.63.107"),
    ("knative.dev/serving", "v0.51.0"),
    ("github.com/jaegertracing/jaeger", "v1.76.0"),
    ("github.com/influxdata/influxdb/v2", "v2.10.1"),
]
NPM_PACKAGES = [
    ("typescript", "7.0.2"),
    ("@types/node", "26.6.11"),
    ("three", "0.187.0"),
    ("date-fns", "4.4.0"),
    ("rxjs", "7.8.2"),
    ("lodash-es", "4.18.1"),
    ("@angular/core", "22.2.6"),
    ("echarts", "6.1.0"),
    ("vue", "3.5.46"),
    ("eslint", "10.16.0"),
    ("webpack", "5.113.0"),
    ("prettier", "3.10.1"),
]
CRATES_LIST = [
    ("tokio", "1.40.0"),
    ("windows", "0.58.0"),
    ("web-sys", "0.3.70"),
    ("syn", "2.0.79"),
    ("regex", "1.10.6"),
    ("serde", "1.0.210"),
    ("libc", "0.2.159"),
    ("nix", "0.29.0"),
    ("rustix", "0.38.37"),
    ("clap", "4.5.20"),
    ("bevy_ecs", "0.14.2"),
    ("hyper", "1.4.1"),
]

SOURCE_EXTENSIONS = frozenset(
    {
        # code
        ".go", ".s", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".m", ".py", ".pyi",
        ".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx", ".vue", ".svelte", ".rs",
        ".java", ".kt", ".scala", ".rb", ".php", ".cs", ".swift", ".lua", ".pl", ".sh", ".bash",
        ".zsh", ".ps1", ".sql", ".proto", ".thrift", ".graphql", ".rego", ".tf", ".hcl", ".tmpl",
        ".tpl", ".gotmpl", ".cue", ".star", ".bzl", ".cmake", ".mk", ".el", ".vim", ".awk",
        # markup, docs and configuration
        ".md", ".rst", ".txt", ".adoc", ".html", ".htm", ".css", ".scss", ".less", ".json",
        ".yaml", ".yml", ".toml", ".ini", ".cfg", ".xml", ".mod",
    }
)  # fmt: skip
SOURCE_NAMES = frozenset({"Makefile", "Dockerfile", "BUILD", "BUILD.bazel", "WORKSPACE", "go.mod"})


def is_source(name: str) -> bool:
    if name in SOURCE_NAMES:
        return True
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in SOURCE_EXTENSIONS


def fetch(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "codebase-mcp-bench-corpus"})
    for attempt in range(3):
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return response.read()
        except OSError:
            if attempt == 2:
                raise
            time.sleep(2 * (attempt + 1))
    raise AssertionError("unreachable")


def finished(part: Path) -> bool:
    return (part / MARKER).exists()


def mark(part: Path) -> None:
    (part / MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")


def fresh(part: Path) -> Path:
    """An empty directory for a part that was not finished (a half-built one is thrown away)."""
    if part.exists():
        shutil.rmtree(part)
    part.mkdir(parents=True)
    return part


def safe_member(name: str, prefix: str) -> str | None:
    """The path below `prefix`, or None for anything outside it, absolute or with `..`."""
    if not name.startswith(prefix):
        return None
    relative = name[len(prefix) :]
    parts = relative.split("/")
    if not relative or relative.startswith("/") or ".." in parts:
        return None
    return relative


def write_member(part: Path, relative: str, data: bytes) -> None:
    target = part / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def copy_tree(source: Path, part: Path, *, skip_dirs: frozenset[str] = frozenset()) -> str:
    if finished(part):
        return f"{part.name}: present"
    fresh(part)
    copied = 0
    for directory, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        relative_dir = Path(directory).relative_to(source)
        for name in filenames:
            path = Path(directory) / name
            if not is_source(name) or path.is_symlink():
                continue
            target = part / relative_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)  # copyfile, not copy2: the module cache is read-only
            copied += 1
    mark(part)
    return f"{part.name}: copied {copied} files from {source}"


def go_module(root: Path, module: str, version: str) -> str:
    part = root / "go" / f"{module}@{version}"
    if finished(part):
        return f"{module}@{version}: present"
    escaped = "".join(f"!{c.lower()}" if c.isupper() else c for c in module)  # the proxy's case escape
    data = fetch(f"{GO_PROXY}/{escaped}/@v/{version}.zip")
    fresh(part)
    prefix = f"{module}@{version}/"
    kept = 0
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            relative = safe_member(info.filename, prefix)
            if relative is None or info.is_dir() or not is_source(relative.rsplit("/", 1)[-1]):
                continue
            write_member(part, relative, archive.read(info))
            kept += 1
    mark(part)
    return f"{module}@{version}: {kept} files ({len(data) / 2**20:.0f} MiB zip)"


def tar_part(part: Path, data: bytes, label: str) -> str:
    fresh(part)
    kept = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            # npm tarballs hold package/..., crates hold NAME-VERSION/...: drop the first segment.
            first, _, rest = member.name.partition("/")
            relative = safe_member(rest, "") if first else None
            if relative is None or not is_source(relative.rsplit("/", 1)[-1]):
                continue
            handle = archive.extractfile(member)
            if handle is not None:
                write_member(part, relative, handle.read())
                kept += 1
    mark(part)
    return f"{label}: {kept} files ({len(data) / 2**20:.1f} MiB)"


def npm_package(root: Path, name: str, version: str) -> str:
    part = root / "npm" / f"{name.replace('/', '__')}@{version}"
    if finished(part):
        return f"{name}@{version}: present"
    base = name.rsplit("/", 1)[-1]
    data = fetch(f"{NPM_REGISTRY}/{name}/-/{base}-{version}.tgz")
    return tar_part(part, data, f"{name}@{version}")


def crate(root: Path, name: str, version: str) -> str:
    part = root / "crates" / f"{name}-{version}"
    if finished(part):
        return f"{name}-{version}: present"
    data = fetch(f"{CRATES}/{name}/{name}-{version}.crate")
    return tar_part(part, data, f"crate {name}-{version}")


def go_root() -> Path | None:
    found = shutil.which("go")
    if found:
        return Path(os.path.realpath(found)).parent.parent
    cache = Path("/root/.cache/codebase-mcp/k8s")
    for candidate in sorted(cache.glob("*/go")) if cache.is_dir() else []:
        if (candidate / "src").is_dir():
            return candidate
    return None


def summarise(root: Path) -> tuple[int, int]:
    by_extension: Counter[str] = Counter()
    by_part: Counter[str] = Counter()
    total_bytes = 0
    for directory, _dirs, filenames in os.walk(root):
        relative = Path(directory).relative_to(root).parts
        top = "/".join(relative[:1]) or "."
        for name in filenames:
            if name == MARKER:
                continue
            dot = name.rfind(".")
            by_extension[name[dot:].lower() if dot > 0 else name] += 1
            by_part[top] += 1
            total_bytes += os.stat(os.path.join(directory, name)).st_size
    total = sum(by_extension.values())
    print("\nfiles by part:")
    for part, count in sorted(by_part.items()):
        print(f"  {part:<16} {count:>9,}")
    print("files by extension (top 25):")
    for extension, count in by_extension.most_common(25):
        print(f"  {extension:<16} {count:>9,}")
    others = total - sum(count for _, count in by_extension.most_common(25))
    print(f"  {'(others)':<16} {others:>9,}")
    print(f"total: {total:,} files, {total_bytes:,} bytes ({total_bytes / 2**30:.2f} GiB)")
    return total, total_bytes


# Each registry's fetcher and its (name, version) list, fetched in this order.
REGISTRIES = ((go_module, GO_MODULES), (npm_package, NPM_PACKAGES), (crate, CRATES_LIST))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target", type=Path)
    parser.add_argument("--no-fetch", action="store_true", help="only the local copies, no registry")
    parser.add_argument("--jobs", type=int, default=8, help="parallel downloads")
    parser.add_argument("--min-files", type=int, default=150_000)
    args = parser.parse_args()
    root: Path = args.target.resolve()
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    if LOCAL_GO_MOD_CACHE.is_dir():
        local = copy_tree(LOCAL_GO_MOD_CACHE, root / "go-mod-cache", skip_dirs=frozenset({"cache"}))
        print(local, flush=True)
    goroot = go_root()
    if goroot is not None:
        print(copy_tree(goroot / "src", root / "go-src"), flush=True)

    if not args.no_fetch:
        tasks = [(function, name, version) for function, parts in REGISTRIES for name, version in parts]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(function, root, name, version) for function, name, version in tasks]
            failures = 0
            for future in futures:
                try:
                    print(future.result(), flush=True)
                except Exception as error:  # report every failed part, then go on
                    failures += 1
                    print(f"FAILED: {error!r}", flush=True)
        if failures:
            print(f"{failures} part(s) failed; re-run to retry them", flush=True)

    total, _bytes = summarise(root)
    print(f"built in {time.perf_counter() - started:.0f} s")
    if total < args.min_files:
        print(f"only {total:,} files, fewer than --min-files {args.min_files:,}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
