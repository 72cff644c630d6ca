#!/bin/sh
# Forms the sealcache Redis Cluster over TLS as cache_admin, or, on a cluster formed before,
# re-introduces every node (after pods came back with new addresses) and adds a node that lost its
# state as a replica. A formed, healthy cluster is left as it is: running this again is safe.
# The password is read from its mounted file into REDISCLI_AUTH, never an argument.
# Settings (environment): NODES, REPLICAS, SERVICE, NAMESPACE, DOMAIN, PORT.
set -eu

REDISCLI_AUTH="$(cat /run/secrets/admin/redis_admin_password)"
export REDISCLI_AUTH

cli() {
  redis-cli --no-auth-warning --tls --cacert /run/secrets/tls/ca.crt \
    --cert /run/secrets/tls/client.crt --key /run/secrets/tls/client.key \
    --user cache_admin "$@"
}

host() {
  echo "redis-$1.$SERVICE.$NAMESPACE.svc.$DOMAIN"
}

# One field of CLUSTER INFO on node $1.
info_field() {
  cli -h "$(host "$1")" -p "$PORT" cluster info | tr -d '\r' |
    awk -F: -v k="$2" '$1 == k { print $2 }'
}

# 1. Every node resolves and answers.
ips=""
i=0
while [ "$i" -lt "$NODES" ]; do
  tries=0
  until ip="$(getent hosts "$(host "$i")" | awk 'NR == 1 { print $1 }')" &&
    [ -n "$ip" ] &&
    [ "$(cli -h "$(host "$i")" -p "$PORT" ping 2>/dev/null)" = "PONG" ]; do
    tries=$((tries + 1))
    if [ "$tries" -ge 150 ]; then
      echo "node $(host "$i") does not answer"
      exit 1
    fi
    sleep 2
  done
  ips="$ips $ip"
  i=$((i + 1))
done
echo "all $NODES nodes answer over TLS"

# 2. Fresh nodes (no slot known, no other node known) and the first formed one.
fresh=0
formed=""
i=0
for ip in $ips; do
  if [ "$(info_field "$i" cluster_slots_assigned)" = "0" ] &&
    [ "$(info_field "$i" cluster_known_nodes)" = "1" ]; then
    fresh=$((fresh + 1))
  elif [ -z "$formed" ]; then
    formed="$ip"
  fi
  i=$((i + 1))
done

if [ "$fresh" -eq "$NODES" ]; then
  echo "forming the cluster: $NODES nodes, $REPLICAS replica(s) per primary"
  addresses=""
  for ip in $ips; do
    addresses="$addresses $ip:$PORT"
  done
  # shellcheck disable=SC2086 # one argument per address
  cli --cluster create $addresses --cluster-replicas "$REPLICAS" --cluster-yes
else
  i=0
  for ip in $ips; do
    if [ "$(info_field "$i" cluster_known_nodes)" = "1" ] &&
      [ "$(info_field "$i" cluster_slots_assigned)" = "0" ]; then
      echo "adding $(host "$i") (no cluster state) as a replica"
      cli --cluster add-node "$ip:$PORT" "$formed:$PORT" --cluster-slave
    elif [ "$ip" != "$formed" ]; then
      # Known nodes at a new address: meeting them again updates the address.
      cli -h "$formed" -p "$PORT" cluster meet "$ip" "$PORT" >/dev/null
    fi
    i=$((i + 1))
  done
fi

# 3. Every node sees a healthy cluster of every node.
tries=0
while :; do
  healthy=0
  i=0
  while [ "$i" -lt "$NODES" ]; do
    if [ "$(info_field "$i" cluster_state)" = "ok" ] &&
      [ "$(info_field "$i" cluster_known_nodes)" = "$NODES" ]; then
      healthy=$((healthy + 1))
    fi
    i=$((i + 1))
  done
  if [ "$healthy" -eq "$NODES" ]; then
    echo "cluster formed: $NODES nodes report cluster_state:ok"
    exit 0
  fi
  tries=$((tries + 1))
  if [ "$tries" -ge 150 ]; then
    echo "the cluster did not become healthy ($healthy of $NODES nodes report it)"
    exit 1
  fi
  sleep 2
done
