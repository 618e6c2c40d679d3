#!/usr/bin/env bash
# Install a real Jaeger v2 (the `jaeger` binary: OTLP receivers, in-memory storage, query API;
# its web UI is a placeholder when built from source) from the Go module proxy, once: the built
# binary is cached and reused on later runs.
#
# `go install github.com/jaegertracing/jaeger/cmd/jaeger@VERSION` is refused by the go command
# because Jaeger's go.mod has a `replace` directive, so the module is downloaded from the proxy
# and built as the main module in a scratch copy, which applies that directive.
#
# Usage: bash .ci/install-jaeger.sh      (prints the binary's path on its last line)
# Env:   JAEGER_VERSION (Go module version), ASYNCTRACE_JAEGER_DIR (where the binary goes)
set -euo pipefail

version="${JAEGER_VERSION:-v1.76.0}"  # module v1.76.0 = Jaeger v2.13 era `cmd/jaeger`
dir="${ASYNCTRACE_JAEGER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/asynctrace/jaeger-$version}"
bin="$dir/jaeger"

if [ -x "$bin" ]; then
    echo "install-jaeger: jaeger $version already installed" >&2
    echo "$bin"
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    echo "install-jaeger: the Go toolchain is not on PATH; install Go 1.24 or newer and run again" >&2
    exit 1
fi
mkdir -p "$dir"
echo "install-jaeger: building github.com/jaegertracing/jaeger/cmd/jaeger@$version (minutes)" >&2
src="$(go mod download -json "github.com/jaegertracing/jaeger@$version" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [ -z "$src" ] || [ ! -d "$src" ]; then
    echo "install-jaeger: go mod download gave no source directory for jaeger@$version" >&2
    exit 1
fi
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -R "$src/." "$work/"
chmod -R u+w "$work"
(cd "$work" && GOFLAGS="-buildvcs=false -mod=mod" go build -trimpath -o "$bin.tmp" ./cmd/jaeger) >&2
mv "$bin.tmp" "$bin"
echo "install-jaeger: installed $bin" >&2
echo "$bin"
