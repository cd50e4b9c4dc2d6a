#!/usr/bin/env bash
# build-nsq-reference.sh: builds NSQ's own nsqd (v1.3.0 by default) from the
# Go module proxy into OUT, for head-to-head runs against ours:
#
#   bench/build-nsq-reference.sh /tmp/nsqd-nsq
#   bench/scenarios.sh --nsqd=/tmp/nsqd-nsq ...   # then --nsqd=our build
#
# It builds in a throw-away module in a temp dir; nothing of NSQ's source
# enters this repository. NSQ's go.mod replaces judwhite/go-svc with a fork,
# and a dependency's replace is not inherited, so it is repeated here.
#
# Usage: bench/build-nsq-reference.sh OUT [VERSION]
set -euo pipefail
out=${1:?usage: build-nsq-reference.sh OUT [VERSION]}
version=${2:-v1.3.0}
case "$out" in /*) ;; *) out=$PWD/$out ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
cat >go.mod <<EOF
module nsqreference

go 1.21

require github.com/nsqio/nsq $version

replace github.com/judwhite/go-svc => github.com/mreiferson/go-svc v1.2.2-0.20210815184239-7a96e00010f6
EOF
cat >tools.go <<'EOF'
//go:build tools

package nsqreference

import _ "github.com/nsqio/nsq/apps/nsqd"
EOF
go mod tidy
go build -o "$out" github.com/nsqio/nsq/apps/nsqd
"$out" --version
