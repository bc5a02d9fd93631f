# bash completion for wgsplit(8).
# Install as /usr/share/bash-completion/completions/wgsplit (loaded on demand by
# bash-completion), or ~/.local/share/bash-completion/completions/wgsplit, or source it.
# Keep in step with src/cli/args.ts (test/unit/man.test.ts checks commands and options).

_wgsplit_global_opts='-c --config -q --quiet --debug --no-color --color -h --help -V --version'

_wgsplit_command_opts() {
  case $1 in
    up | down) echo '-n --dry-run --dnsmasq-conf --dnsmasq-reload' ;;
    apply) echo '-n --dry-run --full --dnsmasq-conf --dnsmasq-reload' ;;
    diff) echo '--json --full --dnsmasq-conf' ;;
    status | check) echo '--json' ;;
    watch) echo '--log-level --log-json --cleanup-on-exit --resync --dnsmasq-conf --dnsmasq-reload --metrics-textfile --metrics-interval' ;;
    explain) echo '-p --proto --dport --sport --uid --from --iif --app --pid --json' ;;
    export) echo '-f --format --family' ;;
    exec) echo '-u --user' ;;
  esac
}

_wgsplit_interfaces() {
  local d
  for d in /sys/class/net/*; do
    [[ -e $d ]] && printf '%s\n' "${d##*/}"
  done
}

# Profile names: *.toml in the config directory (-c/--config, $WGSPLIT_CONFIG, /etc/wgsplit).
_wgsplit_profiles() {
  local dir=${WGSPLIT_CONFIG:-/etc/wgsplit} i f
  for ((i = 1; i < COMP_CWORD; i++)); do
    [[ ${COMP_WORDS[i]} == -c || ${COMP_WORDS[i]} == --config ]] && dir=${COMP_WORDS[i + 1]}
  done
  for f in "$dir"/*.toml; do
    [[ -e $f ]] && f=${f##*/} && printf '%s\n' "${f%.toml}"
  done
}

_wgsplit() {
  local cur prev
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=
  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
  # "--format=nf": bash splits at "=" (COMP_WORDBREAKS), giving "--format" "=" "nf".
  if [[ $cur == = ]]; then
    cur=
  elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
    prev=${COMP_WORDS[COMP_CWORD - 2]}
  fi

  # Values of options that take one.
  case $prev in
    -c | --config)
      local IFS=$'\n'
      COMPREPLY=($(compgen -d -- "$cur"))
      compopt -o filenames 2>/dev/null
      return
      ;;
    -f | --format)
      COMPREPLY=($(compgen -W 'ip nft json' -- "$cur"))
      return
      ;;
    --family)
      COMPREPLY=($(compgen -W '4 6' -- "$cur"))
      return
      ;;
    -p | --proto)
      COMPREPLY=($(compgen -W 'tcp udp icmp' -- "$cur"))
      return
      ;;
    --log-level)
      COMPREPLY=($(compgen -W 'debug info warn error' -- "$cur"))
      return
      ;;
    --uid)
      # a uid or a user name (resolved with getent passwd)
      COMPREPLY=($(compgen -u -- "$cur"))
      return
      ;;
    --dnsmasq-conf)
      local IFS=$'\n'
      COMPREPLY=($(compgen -f -- "$cur"))
      compopt -o filenames 2>/dev/null
      return
      ;;
    --resync | --dport | --sport | --from | --app | --pid | --dnsmasq-reload | --metrics-interval)
      COMPREPLY=()
      return
      ;;
    --iif)
      COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur"))
      return
      ;;
    --metrics-textfile)
      local IFS=$'\n'
      COMPREPLY=($(compgen -f -- "$cur"))
      compopt -o filenames 2>/dev/null
      return
      ;;
    -u | --user)
      COMPREPLY=($(compgen -u -- "$cur"))
      return
      ;;
  esac

  # The command: the first word that is not an option or an option's value.
  local i w command= nargs=0 skip= dashdash=
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    if [[ -n $dashdash ]]; then
      ((nargs++))
      continue
    fi
    if [[ -n $skip ]]; then
      skip=
      [[ $w == = ]] && skip=1
      continue
    fi
    case $w in
      -c | --config | -f | --format | --family | -p | --proto | --log-level | --resync | --dport | --sport | --uid | --from | --iif | --app | --pid | -u | --user | --dnsmasq-conf | --dnsmasq-reload | --metrics-textfile | --metrics-interval)
        skip=1
        ;;
      --)
        [[ -n $command ]] && dashdash=1
        ;;
      -*) ;;
      =) ;;
      *)
        if [[ -z $command ]]; then command=$w; else ((nargs++)); fi
        ;;
    esac
  done

  # exec PROFILE -- COMMAND ARGS: after "--", it is the command's line.
  if [[ $command == exec && -n $dashdash ]]; then
    if ((nargs == 1)); then
      COMPREPLY=($(compgen -c -- "$cur"))
    else
      local IFS=$'\n'
      COMPREPLY=($(compgen -f -- "$cur"))
      compopt -o filenames 2>/dev/null
    fi
    return
  fi

  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$_wgsplit_global_opts $(_wgsplit_command_opts "$command")" -- "$cur"))
    return
  fi

  if [[ -z $command ]]; then
    COMPREPLY=($(compgen -W 'up down apply diff status check watch explain export exec metrics help version' -- "$cur"))
    return
  fi

  case $command in
    up | down)
      ((nargs == 0)) && COMPREPLY=($(compgen -W "$(_wgsplit_interfaces)" -- "$cur"))
      ;;
    exec)
      ((nargs == 0)) && COMPREPLY=($(compgen -W "$(_wgsplit_profiles)" -- "$cur"))
      ((nargs == 1)) && COMPREPLY=($(compgen -W '--' -- "$cur"))
      ;;
    check)
      # Profiles: *.toml files (and directories to descend into).
      local IFS=$'\n'
      COMPREPLY=($(compgen -f -X '!*.toml' -- "$cur") $(compgen -d -- "$cur"))
      compopt -o filenames 2>/dev/null
      ;;
    *)
      COMPREPLY=()
      ;;
  esac
}

complete -F _wgsplit wgsplit
