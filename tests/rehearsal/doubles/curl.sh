#!/bin/sh
# curl double: serves the one Internet download of the boot path, passes everything else to curl.
#
# The boot path fetches the RDS certificate bundle from truststore.pki.rds.amazonaws.com
# (AWS RDS User Guide, "Using SSL/TLS to encrypt a connection to a DB instance"); this
# machine has no Internet, so that URL answers with the rehearsal's test CA, which signed
# the lab database servers' certificates. Everything else (IMDS) goes to the real curl,
# arguments untouched. A shell script: the boot path calls curl for every IMDS read.
bundle=/run/obiam-lab/conf/rds-ca-bundle.pem
fetches_bundle=false
for arg in "$@"; do
  [ "$arg" = https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem ] && fetches_bundle=true
done
[ "$fetches_bundle" = true ] || exec /usr/bin/curl "$@"
output=
while [ $# -gt 0 ]; do
  case $1 in
    -o|--output) output=$2; shift ;;
    --output=*) output=${1#--output=} ;;
  esac
  shift
done
if [ -n "$output" ]; then cp "$bundle" "$output"; else cat "$bundle"; fi
