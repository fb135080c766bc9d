# shellcheck shell=bash
# tests/lab/fleet.sh — the lab's hypervisors (sourced by tests/lab/lab; uses its helpers and variables).
#
# `lab up --hypervisors N` makes N hypervisors hv1..hvN on this one machine, each as separate as a host:
#   - a network namespace aimodel-hvI with one interface on the lab's network 198.18.0.0/24 (RFC 2544's benchmark
#     range: no real network uses it) at 198.18.0.(10+I), and a loopback;
#   - a host name hvI (UTS namespace), and a mount namespace (a private copy of the machine's: it sees the lab's
#     files, and no mount the machine makes later) in which its own directories are bind-mounted over /etc/libvirt (a copy of the machine's, without its domains, with a host_uuid of its own),
#     /run/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt, and over the collection's own
#     /var/lib/aimodel (volume mounts and export trees), /run/aimodel (locks), /var/log/aimodel and the JuiceFS
#     cache /var/jfsCache: what a run mounts there stays on that hypervisor;
#   - its own virtlogd, libvirtd and sshd (root, key only, on its address), and one small guest aimodel-hvI-vm
#     (the lab's busybox guest, with a disk of its own).
# The controller is a network namespace too, aimodel-ctl, holding the bridge of the lab's network at 198.18.0.1:
# `lab fleet-run CMD...` runs CMD there (ip netns exec), where /etc/hosts names hv1..hvN and /etc/ssh/ssh_config
# holds the lab's key and known hosts (both from /etc/netns/aimodel-ctl, which ip netns exec binds over /etc for
# that namespace only), so ansible and qemu+ssh://hvI/system reach the hypervisors as they reach real ones. No
# address is added outside the lab's namespaces.
# Every process is started with a PID file under $LAB/fleet/hvI/pids and stopped by that PID; `lab down` (or
# `lab fleet-down`) stops them, deletes the namespaces and the interfaces, and removes what the lab made.

FLEET=$LAB/fleet
FLEET_CTL_NS=aimodel-ctl
FLEET_BRIDGE=aimodel-br
FLEET_NET=198.18.0
FLEET_CTL_ETC=/etc/netns/$FLEET_CTL_NS
FLEET_KEY=$FLEET/ssh/id_ed25519
FLEET_INVENTORY=$FLEET/inventory.yml
SSHD=/usr/sbin/sshd
# The directories each hypervisor has for itself: the mount point, then its directory below $FLEET/hvI/root.
FLEET_BINDS=(/etc/libvirt /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
             /var/lib/aimodel /run/aimodel /var/log/aimodel /var/jfsCache)

hv_dir() { echo "$FLEET/hv$1"; }            # I
hv_ns() { echo "aimodel-hv$1"; }            # I
hv_addr() { echo "$FLEET_NET.$((10 + $1))"; } # I
hv_vm() { echo "aimodel-hv$1-vm"; }         # I
hv_uri() { echo "qemu+unix:///system?socket=$(hv_dir "$1")/root/run/libvirt/libvirt-sock"; }  # I (from this namespace)
hv_virsh() { local i=$1; shift; virsh -q -c "$(hv_uri "$i")" "$@"; }  # I ARGS...
hv_anchor() { running_pid "$(hv_dir "$1")/pids/anchor.pid" /usr/bin/sleep; }  # I -> the PID holding its namespaces
close_fds() { # close every descriptor above 2 of this (sub)shell: a daemon must not hold a caller's lock file open
    local fd n
    for fd in /proc/"$BASHPID"/fd/*; do
        n=${fd##*/}
        if [[ $n =~ ^[0-9]+$ ]] && ((n > 2)); then eval "exec $n>&-" 2>/dev/null || true; fi
    done
}
hv_daemon() { # I CMD...: start a daemon in hypervisor I's namespaces, with none of this shell's descriptors
    (close_fds; hv_enter "$@")
}
hv_enter() { # I CMD...: run CMD in hypervisor I's mount and network namespaces
    local i=$1 pid
    shift
    pid=$(hv_anchor "$i") || die "hypervisor hv$i has no namespace (lab up --hypervisors N makes it)"
    nsenter --mount="/proc/$pid/ns/mnt" --net="/proc/$pid/ns/net" --uts="/proc/$pid/ns/uts" -- "$@"
}
fleet_count() { cat "$FLEET/count" 2>/dev/null || echo 0; }
netns_exists() { [[ -e /run/netns/$1 ]]; }

# ---------------------------------------------------------------------------------------------- network
fleet_network() { # N
    local n=$1 i ns
    netns_exists "$FLEET_CTL_NS" || ip netns add "$FLEET_CTL_NS"
    ip -n "$FLEET_CTL_NS" link set lo up
    if ! ip -n "$FLEET_CTL_NS" link show "$FLEET_BRIDGE" >/dev/null 2>&1; then
        ip -n "$FLEET_CTL_NS" link add "$FLEET_BRIDGE" type bridge
        ip -n "$FLEET_CTL_NS" addr add "$FLEET_NET.1/24" dev "$FLEET_BRIDGE"
    fi
    ip -n "$FLEET_CTL_NS" link set "$FLEET_BRIDGE" up
    for ((i = 1; i <= n; i++)); do
        ns=$(hv_ns "$i")
        netns_exists "$ns" || ip netns add "$ns"
        ip -n "$ns" link set lo up
        if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
            ip -n "$FLEET_CTL_NS" link add "hv$i" type veth peer name eth0 netns "$ns"
            ip -n "$FLEET_CTL_NS" link set "hv$i" master "$FLEET_BRIDGE" up
            ip -n "$ns" addr add "$(hv_addr "$i")/24" dev eth0
        fi
        ip -n "$ns" link set eth0 up
    done
}

# ---------------------------------------------------------------------------------------------- files
fleet_keys() { # N: the controller's key, the hypervisors' host keys, known_hosts and ssh_config, /etc/hosts
    local n=$1 i d
    install -d -m 0700 "$FLEET/ssh"
    [[ -s $FLEET_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C aimodel-lab-controller -f "$FLEET_KEY"
    : >"$FLEET/ssh/known_hosts.tmp"
    for ((i = 1; i <= n; i++)); do
        d=$(hv_dir "$i")
        install -d -m 0700 "$d/ssh"
        [[ -s $d/ssh/host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -C "hv$i" -f "$d/ssh/host_ed25519_key"
        printf 'hv%s,%s %s\n' "$i" "$(hv_addr "$i")" "$(cut -d' ' -f1-2 "$d/ssh/host_ed25519_key.pub")" \
            >>"$FLEET/ssh/known_hosts.tmp"
        install -m 0600 "$FLEET_KEY.pub" "$d/ssh/authorized_keys"
    done
    mv "$FLEET/ssh/known_hosts.tmp" "$FLEET/ssh/known_hosts"
    install -d -m 0755 "$FLEET_CTL_ETC" "$FLEET_CTL_ETC/ssh"
    {
        printf '127.0.0.1 localhost\n::1 localhost\n%s.1 controller\n' "$FLEET_NET"
        for ((i = 1; i <= n; i++)); do printf '%s hv%s\n' "$(hv_addr "$i")" "$i"; done
    } >"$FLEET_CTL_ETC/hosts"
    # The controller's ssh client (this namespace only): the lab's key and the hypervisors' host keys, checked.
    cat >"$FLEET_CTL_ETC/ssh/ssh_config" <<EOF
# Written by tests/lab/lab for the namespace $FLEET_CTL_NS (the lab's controller).
Host hv* $FLEET_NET.*
    User root
    IdentityFile $FLEET_KEY
    IdentitiesOnly yes
    UserKnownHostsFile $FLEET/ssh/known_hosts
    StrictHostKeyChecking yes
    ConnectTimeout 5
    ServerAliveInterval 5
    ServerAliveCountMax 3
Host *
    GlobalKnownHostsFile /dev/null
EOF
}

fleet_tree() { # I: the hypervisor's own directories and its copy of /etc/libvirt
    local i=$1 d root p uuid
    d=$(hv_dir "$i")
    root=$d/root
    mkdir -p "$d/pids" "$d/logs"
    for p in "${FLEET_BINDS[@]}"; do
        mkdir -p "$root$p"
        [[ -d $p ]] || mkdir -p "$p"  # the mount point on the machine (the collection's own paths)
    done
    chmod 0700 "$root/run/aimodel"
    if [[ ! -f $d/host_uuid ]]; then
        "$(lab_python)" -c 'import uuid; print(uuid.uuid4())' >"$d/host_uuid"
    fi
    uuid=$(cat "$d/host_uuid")
    # /etc/libvirt: the machine's (with the collection's hook the roles installed), without its domains and
    # networks, and with this host's UUID (libvirt refuses a migration between hosts of the same UUID).
    # Made once: libvirtd keeps the hypervisor's own domains there. Its hooks follow the machine's at every up.
    if [[ ! -f $root/etc/libvirt/libvirtd.conf ]]; then
        rm -rf "$root/etc/libvirt.tmp"
        cp -a /etc/libvirt "$root/etc/libvirt.tmp"
        find "$root/etc/libvirt.tmp/qemu" -maxdepth 1 -name '*.xml' -delete
        rm -rf "$root/etc/libvirt.tmp/qemu/autostart" "$root/etc/libvirt.tmp/qemu/networks/autostart"
        printf '\n# tests/lab/lab: hypervisor hv%s\nhost_uuid = "%s"\n' "$i" "$uuid" >>"$root/etc/libvirt.tmp/libvirtd.conf"
        # A bind keeps the directory it was made on: fill it, never replace it.
        mkdir -p "$root/etc/libvirt"
        cp -a "$root/etc/libvirt.tmp/." "$root/etc/libvirt/"
        rm -rf "$root/etc/libvirt.tmp"
    elif [[ -d /etc/libvirt/hooks ]]; then
        mkdir -p "$root/etc/libvirt/hooks"
        cp -a /etc/libvirt/hooks/. "$root/etc/libvirt/hooks/"
    fi
    # /var/lib/libvirt and /var/cache/libvirt: the packaged directories (owners and modes), empty.
    for p in /var/lib/libvirt /var/cache/libvirt; do
        (cd "$p" && find . -type d -print0 | cpio -0pdm --quiet "$root$p") 2>/dev/null || true
    done
    cat >"$d/ssh/sshd_config" <<EOF
# Written by tests/lab/lab: the sshd of hypervisor hv$i, in its namespaces only.
ListenAddress $(hv_addr "$i"):22
HostKey $d/ssh/host_ed25519_key
PidFile $d/pids/sshd.pid
AuthorizedKeysFile $d/ssh/authorized_keys
# The key file lies below /var/tmp (sticky, world-writable), which StrictModes refuses as a key's directory.
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    [[ -s $d/persist.img ]] || make_persist_img "$d/persist.img"
}

# ---------------------------------------------------------------------------------------------- processes
fleet_anchor() { # I: the process that holds the hypervisor's mount namespace (in its network namespace)
    local i=$1 d pid k binds=() p
    d=$(hv_dir "$i")
    hv_anchor "$i" >/dev/null && return 0
    rm -f "$d/pids/anchor.pid"
    for p in "${FLEET_BINDS[@]}"; do binds+=("$d/root$p" "$p"); done
    # shellcheck disable=SC2016
    (close_fds; exec setsid nsenter --net="/run/netns/$(hv_ns "$i")" -- unshare --mount --propagation private --uts -- bash -c '
        set -e
        hostname "$1"; pidfile=$2; shift 2
        # Each bind is a peer group of its own: what the hypervisor mounts there reaches its QEMU and virtiofsd.
        # Copies of the mounts of the machine below them (its volumes, the export trees of its VMs) go first: hidden
        # under a bind they would still be in the mount table at their paths, and look like mounts of this host.
        while (($#)); do
            while read -r _ _ _ _ mp _; do
                if [[ $mp == "$2"/* ]]; then echo "$mp"; fi
            done </proc/self/mountinfo | sort -r | while read -r mp; do umount -l "$mp"; done
            mount --bind "$1" "$2"; mount --make-private "$2"; mount --make-shared "$2"; shift 2
        done
        echo $$ >"$pidfile.tmp"; mv "$pidfile.tmp" "$pidfile"
        exec /usr/bin/sleep infinity' _ "hv$i" "$d/pids/anchor.pid" "${binds[@]}" </dev/null >"$d/logs/anchor.log" 2>&1) &
    for ((k = 0; k < 100; k++)); do
        pid=$(hv_anchor "$i") && return 0
        sleep 0.05
    done
    cat "$d/logs/anchor.log" >&2 || true
    die "hypervisor hv$i: its namespace did not come up"
}
fleet_daemons() { # I: virtlogd, libvirtd, sshd of the hypervisor (each started when not running)
    local i=$1 d k
    d=$(hv_dir "$i")
    [[ -d /run/sshd ]] || install -d -m 0755 /run/sshd  # sshd's privilege separation directory
    if ! running_pid "$d/pids/virtlogd.pid" "$VIRTLOGD" >/dev/null; then
        rm -f "$d/pids/virtlogd.pid"
        LIBVIRT_LOG_OUTPUTS="3:file:$d/logs/virtlogd.log" hv_daemon "$i" "$VIRTLOGD" -d -p "$d/pids/virtlogd.pid"
    fi
    if ! running_pid "$d/pids/libvirtd.pid" "$LIBVIRTD" >/dev/null; then
        rm -f "$d/pids/libvirtd.pid"
        touch "$d/libvirtd-new"
        LIBVIRT_LOG_OUTPUTS="3:file:$d/logs/libvirtd.log" hv_daemon "$i" "$LIBVIRTD" -d -p "$d/pids/libvirtd.pid"
    fi
    if ! running_pid "$d/pids/sshd.pid" "$SSHD" >/dev/null; then
        rm -f "$d/pids/sshd.pid"
        hv_daemon "$i" "$SSHD" -f "$d/ssh/sshd_config" -E "$d/logs/sshd.log" \
            || { tail -n 20 "$d/logs/sshd.log" >&2; die "hypervisor hv$i: sshd did not start"; }
    fi
    for ((k = 0; k < 300; k++)); do
        hv_virsh "$i" list >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    tail -n 20 "$d/logs/libvirtd.log" >&2 || true
    die "hypervisor hv$i: libvirtd does not answer on $(hv_uri "$i")"
}
vm_where() { # I N -> the hypervisor (index) that has guest I defined now (a migration moves it), or nothing
    local i=$1 n=$2 j
    for ((j = 1; j <= n; j++)); do
        [[ -n $(hv_virsh "$j" domstate "$(hv_vm "$i")" 2>/dev/null | head -n 1) ]] && { echo "$j"; return 0; }
    done
    return 0
}
fleet_vm() { # I N: define and start guest I on hypervisor I, unless it lives on another one (migrated there)
    local i=$1 n=$2 d vm xml state at
    d=$(hv_dir "$i")
    vm=$(hv_vm "$i")
    at=$(vm_where "$i" "$n")
    if [[ -n $at && $at != "$i" ]]; then
        log "hv$i: $vm is on hv$at (migrated): left there"
        i=$at
    fi
    xml=$d/$vm.xml
    sed -e "s|@GUEST_DIR@/persist.img|$d/persist.img|g" -e "s|@VM@|$vm|g" -e "s|@GUEST_DIR@|$GUEST|g" \
        -e "s|@LOG_DIR@|$LAB/vmlogs|g" "$HERE/domain.xml.in" >"$xml"
    state=$(hv_virsh "$i" domstate "$vm" 2>/dev/null | head -n 1 || true)
    if [[ -z $state ]]; then
        hv_virsh "$i" define "$xml" >/dev/null
        state="shut off"
    fi
    if [[ $state == running && -f $(hv_dir "$i")/libvirtd-new ]]; then
        # libvirt before 9.2 forgets a running VM's shared memory once libvirtd restarts and then refuses every
        # virtiofs hot-plug ("'virtiofs' requires shared memory"): a guest that outlived its libvirtd restarts.
        log "hv$i: $vm outlived a libvirtd restart: restarting it (libvirt < 9.2 refuses its virtiofs hot-plugs)"
        hv_virsh "$i" destroy "$vm" >/dev/null
        state="shut off"
    fi
    case $state in
        running) return 0 ;;
        paused | crashed | 'in shutdown') hv_virsh "$i" destroy "$vm" >/dev/null 2>&1 || true ;;
    esac
    log "hv$i: starting $vm"
    hv_virsh "$i" start "$vm" >/dev/null
    echo "$i" >"$d/started-on"
}
fleet_ssh_ok() { # I: the controller reaches the hypervisor's sshd with the lab's key
    ip netns exec "$FLEET_CTL_NS" ssh -o BatchMode=yes "hv$1" true </dev/null 2>>"$(hv_dir "$1")/logs/ssh-check.log"
}

fleet_inventory() { # N: the controller's inventory of the hypervisors (YAML), and the inventory plugin's source
    local n=$1 i
    {
        echo "# Written by tests/lab/lab up --hypervisors $n: the lab's hypervisors, reached over SSH from the"
        echo "# namespace $FLEET_CTL_NS (bash tests/lab/lab fleet-run ansible-playbook -i $FLEET_INVENTORY ...)."
        echo "all:"
        echo "  children:"
        echo "    hypervisors:"
        echo "      hosts:"
        for ((i = 1; i <= n; i++)); do
            echo "        hv$i:"
            echo "          lab_vm: $(hv_vm "$i")"
            # where its QEMU takes a migration's stream (a name would resolve in the source's namespace)
            echo "          aimodel_migrate_data_uri: tcp://$(hv_addr "$i")"
        done
        echo "      vars:"
        echo "        ansible_connection: ssh"
        echo "        ansible_user: root"
        echo "        ansible_python_interpreter: $VENV/bin/python"
    } >"$FLEET_INVENTORY"
    {
        echo "# Written by tests/lab/lab up --hypervisors $n: the inventory plugin over the lab's hypervisors."
        echo "plugin: aimodel.kvm.model_mounts"
        echo "hypervisors:"
        for ((i = 1; i <= n; i++)); do
            echo "  - name: hv$i"
            echo "    uri: qemu+ssh://root@hv$i/system"
        done
    } >"$FLEET/fleet.aimodel.yml"
    {
        echo "LAB_FLEET_COUNT=$n"
        echo "LAB_FLEET_NETNS=$(q "$FLEET_CTL_NS")"
        echo "LAB_FLEET_INVENTORY=$(q "$FLEET_INVENTORY")"
        echo "LAB_FLEET_PLUGIN_SOURCE=$(q "$FLEET/fleet.aimodel.yml")"
        for ((i = 1; i <= n; i++)); do
            echo "LAB_HV${i}_URI=$(q "$(hv_uri "$i")")"
            echo "LAB_HV${i}_VM=$(q "$(hv_vm "$i")")"
            echo "LAB_HV${i}_ADDR=$(q "$(hv_addr "$i")")"
        done
    } >"$FLEET/fleet.env"
}

fleet_up() { # N
    local n=$1 i vm started=()
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 8)); then die "--hypervisors: a number from 1 to 8, not '$n'"; fi
    [[ -x $SSHD ]] || die "$SSHD is missing (package openssh-server)"
    local have
    have=$(fleet_count)
    if ((have > n)); then
        log "the fleet has $have hypervisors, $n wanted: taking it down first"
        fleet_down
    fi
    mkdir -p "$FLEET"
    fleet_network "$n"
    fleet_keys "$n"
    for ((i = 1; i <= n; i++)); do
        fleet_tree "$i"
        fleet_anchor "$i"
        fleet_daemons "$i"
    done
    echo "$n" >"$FLEET/count"
    for ((i = 1; i <= n; i++)); do
        rm -f "$(hv_dir "$i")/started-on"
        fleet_vm "$i" "$n"
        [[ -f $(hv_dir "$i")/started-on ]] && started+=("$i")
    done
    for ((i = 1; i <= n; i++)); do rm -f "$(hv_dir "$i")/libvirtd-new"; done
    local at
    for i in "${started[@]}"; do
        vm=$(hv_vm "$i")
        at=$(cat "$(hv_dir "$i")/started-on")
        "$VENV/bin/python" "$GUEST_RUN" --uri "$(hv_uri "$at")" --vm "$vm" --ping --wait 120 2>/dev/null \
            || { tail -n 30 "$LAB/vmlogs/$vm-console.log" >&2 || true; die "hv$at: the agent of $vm does not answer"; }
    done
    for ((i = 1; i <= n; i++)); do
        local k ok=0
        for ((k = 0; k < 50; k++)); do
            if fleet_ssh_ok "$i"; then ok=1; break; fi
            sleep 0.1
        done
        ((ok)) || { tail -n 5 "$(hv_dir "$i")/logs/ssh-check.log" >&2; die "hv$i: ssh from $FLEET_CTL_NS fails"; }
    done
    fleet_inventory "$n"
    log "fleet: $n hypervisors (inventory $FLEET_INVENTORY, env $FLEET/fleet.env)"
}

# ---------------------------------------------------------------------------------------------- down
# shellcheck disable=SC2016  # awk programs
fleet_down_hv() { # I
    local i=$1 d vm mp pid anchor pids=() p
    d=$(hv_dir "$i")
    [[ -d $d ]] || return 0
    if running_pid "$d/pids/libvirtd.pid" "$LIBVIRTD" >/dev/null; then
        while read -r vm; do
            [[ -n $vm ]] || continue
            log "hv$i: destroy and undefine $vm"
            hv_virsh "$i" destroy "$vm" >/dev/null 2>&1 || true
            hv_virsh "$i" undefine "$vm" >/dev/null 2>&1 || true
        done < <(hv_virsh "$i" list --all --name 2>/dev/null || true)
    fi
    if anchor=$(hv_anchor "$i"); then
        # The hypervisor's JuiceFS mounts and export binds live in its mount namespace only.
        while read -r mp; do
            [[ -n $mp ]] || continue
            hv_enter "$i" umount -l "$mp" 2>/dev/null || true
        done < <(hv_enter "$i" awk -v p="$EXPORTS_ROOT/" 'index($5, p) == 1 { print length($5), $5 }' /proc/self/mountinfo \
                 | sort -rn | cut -d' ' -f2-)
        while read -r mp; do
            [[ -n $mp ]] || continue
            log "hv$i: juicefs umount $mp"
            hv_enter "$i" "$JFS" umount "$mp" >/dev/null 2>&1 || hv_enter "$i" umount -l "$mp" 2>/dev/null || true
        done < <(hv_enter "$i" awk '$3 == "fuse.juicefs" { print $2 }' /proc/mounts | sort -r)
        # What is left of the namespace's processes (juicefs, virtiofsd), by PID.
        local want
        want=$(readlink "/proc/$anchor/ns/mnt")
        for p in /proc/[0-9]*; do
            pid=${p#/proc/}
            [[ $pid == "$anchor" ]] && continue
            [[ $(readlink "$p/ns/mnt" 2>/dev/null) == "$want" ]] || continue
            case $(readlink "$p/exe" 2>/dev/null) in
                "$LIBVIRTD" | "$VIRTLOGD" | "$SSHD") ;;
                *) pids+=("$pid") ;;
            esac
        done
    fi
    stop_daemon "hv$i sshd" "$d/pids/sshd.pid" "$SSHD"
    stop_daemon "hv$i libvirtd" "$d/pids/libvirtd.pid" "$LIBVIRTD"
    stop_daemon "hv$i virtlogd" "$d/pids/virtlogd.pid" "$VIRTLOGD"
    if ((${#pids[@]})); then
        log "hv$i: stopping what is left in its namespace: ${pids[*]}"
        stop_pids 5 5 "${pids[@]}"
    fi
    stop_daemon "hv$i namespace" "$d/pids/anchor.pid" /usr/bin/sleep
    netns_exists "$(hv_ns "$i")" && ip netns del "$(hv_ns "$i")"
    rm -rf "$d/root" "$d/pids" "$d/persist.img" "$d/started-on" "$d/libvirtd-new" "$d"/*.xml
}
fleet_down() {
    local i n
    n=$(fleet_count)
    [[ -d $FLEET ]] || return 0
    # Also the ones a larger fleet left.
    for i in $(find "$FLEET" -maxdepth 1 -name 'hv[0-9]*' -printf '%f\n' | sed 's/^hv//' | sort -n); do
        fleet_down_hv "$i"
    done
    netns_exists "$FLEET_CTL_NS" && ip netns del "$FLEET_CTL_NS"
    rm -rf "$FLEET_CTL_ETC"
    rmdir /etc/netns 2>/dev/null || true
    rm -f "$FLEET/count" "$FLEET/fleet.env" "$FLEET_INVENTORY" "$FLEET/fleet.aimodel.yml"
    ((n == 0)) || log "fleet: $n hypervisors down"
}

fleet_status() {
    local i d name prog pid n
    n=$(fleet_count)
    ((n)) || { printf '%-10s %s\n' fleet "none (lab up --hypervisors N)"; return 0; }
    for ((i = 1; i <= n; i++)); do
        d=$(hv_dir "$i")
        for name in anchor virtlogd libvirtd sshd; do
            case $name in anchor) prog=/usr/bin/sleep ;; virtlogd) prog=$VIRTLOGD ;; libvirtd) prog=$LIBVIRTD ;; sshd) prog=$SSHD ;; esac
            if pid=$(running_pid "$d/pids/$name.pid" "$prog"); then
                printf '%-10s hv%s %s running (pid %s)\n' fleet "$i" "$name" "$pid"
            else
                printf '%-10s hv%s %s stopped\n' fleet "$i" "$name"
            fi
        done
        printf '%-10s hv%s %s: %s\n' fleet "$i" "$(hv_vm "$i")" \
            "$(hv_virsh "$i" domstate "$(hv_vm "$i")" 2>/dev/null | head -n 1 || echo unknown)"
    done
}

fleet_run() { # CMD...: in the controller's namespace (in a UTF-8 locale, which ansible needs; the lab's own is C)
    netns_exists "$FLEET_CTL_NS" || die "no fleet: run lab up --hypervisors N first"
    LC_ALL=C.UTF-8 exec ip netns exec "$FLEET_CTL_NS" "$@"
}
