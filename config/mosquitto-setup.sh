#!/usr/bin/env bash
# Once per Mosquitto (config/mosquitto.conf, after `mosquitto_ctrl dynsec
# init`): the roles the dispatchers need and, for each instance named, its
# two logins. Prints each instance's [mqtt] settings, passwords included:
# keep them as secrets (ELDERCARE__MQTT__PASSWORD and
# ELDERCARE__MQTT__DYNSEC__PASSWORD are the environment's way).
#
#   MOSQUITTO_ADMIN_PASSWORD=… config/mosquitto-setup.sh [-h host] [-p port]
#       [-u admin] [-r topic_root] instance...
#
# Safe to run again: what exists is kept, and an instance named again gets
# new passwords.
set -euo pipefail

host=127.0.0.1 port=1883 admin=admin root=eldercare/v1
while getopts "h:p:u:r:" opt; do
    case $opt in
        h) host=$OPTARG ;;
        p) port=$OPTARG ;;
        u) admin=$OPTARG ;;
        r) root=$OPTARG ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -eq 0 ] || [ -z "${MOSQUITTO_ADMIN_PASSWORD:-}" ]; then
    echo "usage: MOSQUITTO_ADMIN_PASSWORD=… $0 [-h host] [-p port] [-u admin] [-r topic_root] instance..." >&2
    exit 2
fi

# One dynsec command; "already exists" is what a second run finds.
dynsec() {
    local out
    if ! out=$(mosquitto_ctrl -h "$host" -p "$port" -u "$admin" -P "$MOSQUITTO_ADMIN_PASSWORD" \
        dynsec "$@" 2>&1 | grep -v -e '^Warning: You are running' -e '^This means all of the' -e '^$'); then
        return 0 # grep found nothing to print: success
    fi
    case $out in
        *"already exists"*) return 0 ;;
        *Error*|*error*|*refused*)
            echo "mosquitto_ctrl dynsec $1 failed: $out" >&2
            exit 1 ;;
    esac
}

# One dynsec command whose failure means nothing (removing what is not there).
dynsec_quiet() {
    mosquitto_ctrl -h "$host" -p "$port" -u "$admin" -P "$MOSQUITTO_ADMIN_PASSWORD" \
        dynsec "$@" >/dev/null 2>&1 || true
}

# Dispatchers: every device's events and status, every device's commands.
dynsec createRole eldercare-dispatcher
for topic in "$root/devices/+/events" "$root/devices/+/status"; do
    dynsec addRoleACL eldercare-dispatcher subscribePattern "$topic" allow 0
    dynsec addRoleACL eldercare-dispatcher publishClientReceive "$topic" allow 0
done
dynsec addRoleACL eldercare-dispatcher subscribePattern "\$share/+/$root/devices/+/events" allow 0
dynsec addRoleACL eldercare-dispatcher publishClientSend "$root/devices/+/commands" allow 0

# The dispatchers' accounts login: dynsec's control topic, nothing else.
dynsec createRole eldercare-accounts
dynsec addRoleACL eldercare-accounts publishClientSend '$CONTROL/dynamic-security/v1' allow 0
dynsec addRoleACL eldercare-accounts subscribeLiteral '$CONTROL/dynamic-security/v1/response' allow 0
dynsec addRoleACL eldercare-accounts publishClientReceive '$CONTROL/dynamic-security/v1/response' allow 0

new_password() { openssl rand -base64 24 | tr '+/' '-_'; }

for instance in "$@"; do
    main=$(new_password) accounts=$(new_password)
    dynsec createClient "$instance" -p "$main"
    dynsec setClientPassword "$instance" "$main"
    # dynsec has no "add if missing" for a client's role: take it, give it.
    dynsec_quiet removeClientRole "$instance" eldercare-dispatcher
    dynsec addClientRole "$instance" eldercare-dispatcher 0
    dynsec createClient "$instance-accounts" -p "$accounts"
    dynsec setClientPassword "$instance-accounts" "$accounts"
    dynsec_quiet removeClientRole "$instance-accounts" eldercare-accounts
    dynsec addClientRole "$instance-accounts" eldercare-accounts 0
    cat <<TOML
# instance $instance
[mqtt]
url = "mqtt://$host:$port"
client_id = "$instance"
username = "$instance"
password = "$main"
topic_root = "$root"

[mqtt.dynsec]
username = "$instance-accounts"
password = "$accounts"

TOML
done
