# Citus nodes on loopback ports for test/t/014_citus.sh and
# benches/citus/serve.sh (sourced; run from the repository root). Each node
# preloads citus (first, as Citus requires) and pg_ecom (its own inference
# worker), and has a database "ecom" with the citus extension.
# NODES is a list of NAME:PORT; OPTS, extra server options.

# starts one node (its data kept)
citus_node_start() {
  PG_ECOM_SERVER_OPTS="-c shared_preload_libraries=citus,pg_ecom -c max_prepared_transactions=20 ${3:-}" \
    scripts/cluster start "$1" "$2"
}

# fresh nodes: data wiped, started, database and extension made
citus_nodes_create() {
  local x
  for x in $1; do
    rm -rf ".ecom/clusters/${x%:*}"
    citus_node_start "${x%:*}" "${x#*:}" "${2:-}"
    scripts/cluster psql "${x%:*}" "${x#*:}" -d postgres -qc "CREATE DATABASE ecom" >/dev/null
    scripts/cluster psql "${x%:*}" "${x#*:}" -d ecom -qc "SET client_min_messages = warning" -c "CREATE EXTENSION citus" >/dev/null
  done
}

citus_nodes_stop() {
  local x
  for x in $1; do scripts/cluster stop "${x%:*}" "${x#*:}"; done
}
