# mscope-node.sh - shell functions every Mirrorscope instance uses at boot,
# installed as /usr/local/lib/mscope/node.sh by each module's cloud-init.
# POSIX sh; the caller sets -eu and exports AWS_DEFAULT_REGION.

# The instance metadata, IMDSv2 only: the launch templates require tokens.
imds() {
    t=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \
        http://169.254.169.254/latest/api/token) &&
        curl -sf -H "X-aws-ec2-metadata-token: $t" "http://169.254.169.254/latest/$1"
}

# mount_data_volume [DEVICE...]: format (once) and mount the data volume on
# /var/lib/mscope. Its /dev name differs between Nitro (nvmeXn1, with a
# /dev/disk/by-id name holding the volume id) and Xen (xvdf) instances: the
# volume is the first DEVICE that appears or, with none given, the one whole
# disk that has no partitions and no mount.
mount_data_volume() {
    disk=""
    for _ in $(seq 120); do
        for d in "$@"; do
            if [ -e "$d" ]; then
                disk=$(readlink -f "$d")
                break
            fi
        done
        if [ $# -eq 0 ]; then
            for d in $(lsblk -dnpo NAME,TYPE | awk '$2 == "disk" { print $1 }'); do
                if [ "$(lsblk -no NAME "$d" | wc -l)" -eq 1 ] &&
                    [ -z "$(lsblk -no MOUNTPOINT "$d" | tr -d '[:space:]')" ]; then
                    disk=$d
                    break
                fi
            done
        fi
        [ -n "$disk" ] && break
        sleep 5 # an EBS attachment can come minutes after boot
    done
    if [ -z "$disk" ]; then
        echo "mscope: no data volume found" >&2
        return 1
    fi
    # Never format a volume that holds a file system: it may be the store of a
    # replaced instance.
    blkid "$disk" >/dev/null 2>&1 || mkfs.xfs -q -L mscope-data "$disk"
    mkdir -p /var/lib/mscope
    grep -q ' /var/lib/mscope ' /etc/fstab ||
        echo "LABEL=mscope-data /var/lib/mscope xfs defaults,noatime,nofail 0 2" >>/etc/fstab
    mountpoint -q /var/lib/mscope || mount /var/lib/mscope
}

# install_package URL SHA256: the Mirrorscope .deb from https:// or s3://,
# checked against SHA256 when it is not empty. The package brings the
# binaries, the hardened units in /lib/systemd/system, the user and group
# mscope and the data directories /var/lib/mscope/{recorder,coordinator,broker}
# (its postinst; existing ones are left as they are).
#
# cloud-init has already written /etc/mscope/*.conf (write_files runs before
# runcmd), and the package ships those paths as conffiles: dpkg would ask
# whether to keep them and, with no terminal, fail the install. confold keeps
# the file we wrote, confdef takes dpkg's default wherever there is one. This
# rather than writing the configuration after the install: that would only
# move the question to the next upgrade (from then on the file is a locally
# changed conffile, so every later install needs these options anyway), and
# the configuration stays in write_files, rendered by Terraform, not in a
# script.
install_package() {
    case "$1" in
    s3://*) aws s3 cp --only-show-errors "$1" /tmp/mscope.deb ;;
    *) curl -fsSL --retry 5 -o /tmp/mscope.deb "$1" ;;
    esac
    [ -z "$2" ] || echo "$2  /tmp/mscope.deb" | sha256sum -c --quiet -
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        /tmp/mscope.deb
    rm -f /tmp/mscope.deb
}

# fetch_secret ARN FILE: the secret's string into FILE, mode 0600, owned by
# user mscope, written whole or not at all. The value never appears on a
# command line. Returns non-zero while the secret has no value yet.
fetch_secret() {
    (
        umask 077
        aws secretsmanager get-secret-value --secret-id "$1" \
            --query SecretString --output text >"$2.new" 2>/dev/null
    ) || {
        rm -f "$2.new"
        return 1
    }
    chown mscope:mscope "$2.new"
    mv -f "$2.new" "$2"
}

# wait_secret ARN FILE: fetch_secret until the secret has a value - the
# coordinator fills it at its first boot - saying so once a minute.
wait_secret() {
    n=0
    until fetch_secret "$1" "$2"; do
        if [ $((n % 6)) -eq 0 ]; then
            echo "mscope: waiting for secret $1 (the coordinator fills it at its first boot)" >&2
        fi
        n=$((n + 1))
        sleep 10
    done
}

# put_secret ARN FILE: FILE's contents as the secret's new value, passed as
# file:// so the value never appears on a command line; tried again every
# 10 s until it is taken (the instance role's policy may lag an apply).
put_secret() {
    until aws secretsmanager put-secret-value --secret-id "$1" \
        --secret-string "file://$2" >/dev/null; do
        sleep 10
    done
}

# new_token FILE: a new random token (32 bytes in hex, one word) into FILE, 0600.
new_token() {
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1")
}

# put_field JSON FIELD FILE MODE: one field of a fetched JSON secret into FILE
# with MODE, owned by user mscope, written whole or not at all.
put_field() {
    (
        umask 077
        jq -er --arg f "$2" '.[$f] // empty' "$1" >"$3.new"
    ) || {
        rm -f "$3.new"
        echo "mscope: no $2 in the secret" >&2
        return 1
    }
    chmod "$4" "$3.new"
    chown mscope:mscope "$3.new"
    mv -f "$3.new" "$3"
}

# complete_hook HOOK: tell Auto Scaling this instance may go on (CONTINUE).
complete_hook() {
    aws autoscaling complete-lifecycle-action --auto-scaling-group-name "$ASG" \
        --lifecycle-hook-name "$1" --instance-id "$(imds meta-data/instance-id)" \
        --lifecycle-action-result CONTINUE ||
        echo "mscope: lifecycle action $1 not completed (none pending, e.g. after a reboot)" >&2
}

# lifecycle SERVICE HTTP_PORT: complete the launch hook once SERVICE answers
# /readyz 200 (only then does the NLB send to it), then wait for the
# instance's turn to terminate, stop SERVICE (SIGTERM: it drains) and
# complete the terminate hook. Runs as a service of its own.
lifecycle() {
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/readyz")" = 200 ]; do
        sleep 5
    done
    complete_hook "$LAUNCH_HOOK"
    # "Terminated" here means Auto Scaling waits on our terminate hook.
    until [ "$(imds meta-data/autoscaling/target-lifecycle-state)" = Terminated ]; do
        sleep 5
    done
    systemctl stop "$1"
    complete_hook "$TERMINATE_HOOK"
}
