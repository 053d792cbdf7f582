"""Shell completion for `codebase-mcp`, generated from the argparse parser itself.

Why generated and not shipped as files: the words come from the same parser the command uses, so
a new subcommand or option completes without anyone remembering a second list. zsh runs the bash
function through `bashcompinit`, which every zsh ships.
"""

from __future__ import annotations

import argparse
import shlex


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _words(parser: argparse.ArgumentParser) -> list[str]:
    words = list(_subparsers(parser))
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        words.extend(o for o in action.option_strings if o.startswith("--"))
        if (
            action.choices
            and not action.option_strings
            and not isinstance(action, argparse._SubParsersAction)
        ):
            words.extend(str(c) for c in action.choices)
    return words


def _table(parser: argparse.ArgumentParser, path: str = "") -> dict[str, list[str]]:
    """Completions after each command path: '' (top level), 'db', 'db stop', ..."""
    table = {path: _words(parser)}
    for name, child in _subparsers(parser).items():
        table.update(_table(child, f"{path} {name}".strip()))
    return table


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    cases = "\n".join(
        f"    {shlex.quote(path or '-')}) words={shlex.quote(' '.join(words))} ;;"
        for path, words in sorted(_table(parser).items())
    )
    bash = f"""# codebase-mcp completion ({shell}); load with: eval "$(codebase-mcp completion {shell})"
_codebase_mcp() {{
  local cur path="" w i
  cur="${{COMP_WORDS[COMP_CWORD]}}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${{COMP_WORDS[i]}}"
    [[ "$w" == -* ]] && continue
    if _codebase_mcp_known "${{path:+$path }}$w"; then path="${{path:+$path }}$w"; fi
  done
  local words
  case "${{path:--}}" in
{cases}
    *) words="" ;;
  esac
  if [[ "$cur" == -* || -n "$words" ]]; then
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  fi
  [[ ${{#COMPREPLY[@]}} -eq 0 ]] && COMPREPLY=($(compgen -f -- "$cur"))
  return 0
}}
_codebase_mcp_known() {{
  case "$1" in
{chr(10).join(f"    {shlex.quote(path)}) return 0 ;;" for path in sorted(_table(parser)) if path)}
  esac
  return 1
}}
complete -F _codebase_mcp codebase-mcp
"""
    if shell == "zsh":
        return "autoload -U +X bashcompinit && bashcompinit\n" + bash
    return bash
