# The testbed's layout and its building blocks, sourced by .ci/hosts-up,
# .ci/hosts-down and .ci/on-host (not run by itself).
#
# Hosts are Linux namespaces on this machine: each has its own network
# namespace (/run/netns/NAME), its own UTS namespace (its host name) and its
# own mount namespace, in which /root and /home are private tmpfs (so that
# each host has its own home directories and worker cache, as separate
# machines do; everything else, the build tree included, is shared, as an
# NFS-mounted cluster shares it). Names resolve on every host through a
# block this script adds to /etc/hosts.
#
#   controller (this machine's own namespace)   198.18.0.1  rx0
#   bridge rxtb0, 198.18.0.0/24: rx1 .11 (also 198.18.1.11 on rxtb1, the
#       gateway host), rx2 .12, rx3 .13, rx4 .14 (slurmctld),
#       rx5 .15, rx6 .16, rx7 .17 (slurmd)
#   bridge rxtb1, 198.18.1.0/24, isolated: only rx1 and rx8 (198.18.1.18)
#
# Every host runs an OpenSSH sshd with its own host key; the controller
# trusts them through a known_hosts file written here (no
# StrictHostKeyChecking=no). A second Slurm cluster (its own configuration,
# ports on the hosts' addresses, munge shared with the machine) has its
# slurmctld on rx4 and slurmd on rx5-rx7.

TB=/run/remex-testbed
NS="$TB/ns"
TB_HOSTS="rx1 rx2 rx3 rx4 rx5 rx6 rx7 rx8"
TB_SLURM_CTL=rx4
TB_SLURM_NODES="rx5 rx6 rx7"
TB_CONTROLLER_ADDR=198.18.0.1
TB_SLURM_CONF="$TB/slurm/slurm.conf"
TB_SLURM_STATE=/var/spool/remex-testbed
TB_SLURM_LOG=/var/log/remex-testbed
HOSTS_BEGIN="# remex-testbed begin: written by hosts-up, removed by hosts-down"
HOSTS_END="# remex-testbed end"

tb_addr() { # NAME -> its address (on the isolated network for rx8)
  case "$1" in
    rx8) echo 198.18.1.18 ;;
    rx*) echo "198.18.0.1${1#rx}" ;;
  esac
}

tb_net_of() { # NAME -> the bridge of its first interface
  case "$1" in
    rx8) echo rxtb1 ;;
    *) echo rxtb0 ;;
  esac
}

# Runs a command on host NAME: in its network, UTS and mount namespaces.
tb_on() {
  local h=$1
  shift
  nsenter --net="/run/netns/$h" --uts="$NS/$h.uts" --mount="$NS/$h.mnt" -- "$@"
}

# The pids of every process in host NAME's network namespace.
tb_pids() {
  local want
  want=$(readlink "/proc/self/ns/net" 2>/dev/null)
  want="net:[$(stat -L -c %i "/run/netns/$1" 2>/dev/null || echo none)]"
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/ns/net" 2>/dev/null)" = "$want" ] && echo "${p#/proc/}"
  done
  return 0
}

tb_log() { echo "testbed: $*" >&2; }

# /etc/hosts without the testbed's block, on stdout.
tb_hosts_stripped() {
  awk -v b="$HOSTS_BEGIN" -v e="$HOSTS_END" '$0 == b {skip = 1} !skip {print} $0 == e {skip = 0}' /etc/hosts
}
