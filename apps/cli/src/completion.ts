import type { Command } from 'commander';

/** Every command path with its subcommands and options, from the commander tree itself. */
function walk(cmd: Command, prefix: string[] = [], out: { path: string; subs: string[]; options: string[] }[] = []) {
  const subs = cmd.commands.map((c) => c.name());
  const options = cmd.options.map((o) => o.long ?? o.short ?? '').filter(Boolean);
  out.push({ path: prefix.join(' '), subs, options });
  for (const c of cmd.commands) walk(c, [...prefix, c.name()], out);
  return out;
}

/** A bash or zsh completion script for `switchyard` (zsh through bashcompinit). */
export function completionScript(program: Command, shell: 'bash' | 'zsh'): string {
  const globalOptions = program.options.map((o) => o.long!).concat('--help');
  const cases = walk(program)
    .map(
      ({ path, subs, options }) =>
        `    "${path}") words_for="${[...subs, ...options, ...(path ? globalOptions : [])].join(' ')}" ;;`,
    )
    .join('\n');
  const bash = `# switchyard completion (bash): eval "$(switchyard completion bash)"
_switchyard_complete() {
  local cur path word words_for
  cur="\${COMP_WORDS[COMP_CWORD]}"
  path=""
  for word in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case "$word" in -*) continue ;; esac
    if [ -z "$path" ]; then candidate="$word"; else candidate="$path $word"; fi
    case "$candidate" in
${walk(program)
  .map(({ path }) => `      "${path}") path="$candidate" ;;`)
  .filter((l) => !l.includes('"")'))
  .join('\n')}
    esac
  done
  case "$path" in
${cases}
    *) words_for="" ;;
  esac
  COMPREPLY=( $(compgen -W "$words_for" -- "$cur") )
}
complete -F _switchyard_complete switchyard
`;
  if (shell === 'bash') return bash;
  return `#compdef switchyard
# switchyard completion (zsh): eval "$(switchyard completion zsh)"
autoload -U +X bashcompinit && bashcompinit
${bash}`;
}
