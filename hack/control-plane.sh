#!/usr/bin/env bash
# Provision the test control plane: a kube-apiserver, etcd and kubectl that the integration and
# end-to-end tests start on loopback (see TESTING.md).
#
# Order of preference:
#   1. $KUBEBUILDER_ASSETS, when it names a folder with kube-apiserver and etcd (envtest users);
#   2. the cached build in $KAAS_CACHE_DIR (default ~/.cache/kaas);
#   3. a build of Kubernetes v1.20.2 from Debian bookworm's source package, installing the
#      Debian packages it needs. This takes 5-10 minutes on 2 cores and is done once.
#
# The last line on stdout is the assets folder (kube-apiserver, etcd, kubectl); progress goes to
# stderr. Usage: hack/control-plane.sh [--print-only]
set -euo pipefail

K8S_VERSION=v1.20.2
CACHE_DIR=${KAAS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kaas}
ASSETS=$CACHE_DIR/control-plane/$K8S_VERSION
BUILD=$CACHE_DIR/build

say() { printf '[control-plane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  sudo_if_needed apt-get update -qq >&2
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
  say "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

# etcd always comes from Debian; the cached folder links to it.
command -v etcd >/dev/null 2>&1 || apt_install etcd-server
command -v openssl >/dev/null 2>&1 || apt_install openssl

if [ -x "$ASSETS/kube-apiserver" ] && [ -x "$ASSETS/kubectl" ]; then
  ln -sf "$(command -v etcd)" "$ASSETS/etcd"
  say "cached control plane found in $ASSETS"
  echo "$ASSETS"
  exit 0
fi

say "no cached control plane: building Kubernetes $K8S_VERSION from Debian's source (takes minutes)"
apt_install golang-1.19-go dpkg-dev
export PATH=/usr/lib/go-1.19/bin:$PATH

if [ ! -f /etc/apt/sources.list.d/kaas-deb-src.sources ]; then
  say "adding a deb-src entry for bookworm main"
  sudo_if_needed tee /etc/apt/sources.list.d/kaas-deb-src.sources >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  sudo_if_needed apt-get update -qq >&2
fi

mkdir -p "$BUILD"
cd "$BUILD"
if ! ls kubernetes_*.orig.tar.gz >/dev/null 2>&1; then
  say "downloading the kubernetes source package (about 34 MB)"
  apt-get source --download-only kubernetes >&2 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true
fi
TARBALL=$(ls kubernetes_*.orig.tar.gz | head -n1)

GOPATH_DIR=$BUILD/gopath
TREE=$GOPATH_DIR/src/k8s.io/kubernetes
rm -rf "$GOPATH_DIR"
mkdir -p "$TREE"
say "unpacking $TARBALL"
tar xzf "$TARBALL" -C "$TREE" --strip-components=1

say "patching vendored modern-go/reflect2 (v1.0.1 crashes on Go >= 1.18; same fix as v1.0.2)"
python3 - "$TREE/vendor/github.com/modern-go/reflect2" <<'PY'
import pathlib, re, sys
d = pathlib.Path(sys.argv[1])
link = d / "unsafe_link.go"
s = link.read_text()
s = s.replace("func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer) *hiter",
              "func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer, it *hiter)")
full = """type hiter struct {
	key         unsafe.Pointer
	value       unsafe.Pointer
	t           unsafe.Pointer
	h           unsafe.Pointer
	buckets     unsafe.Pointer
	bptr        unsafe.Pointer
	overflow    *[]unsafe.Pointer
	oldoverflow *[]unsafe.Pointer
	startBucket uintptr
	offset      uint8
	wrapped     bool
	B           uint8
	i           uint8
	bucket      uintptr
	checkBucket uintptr
}"""
s, n = re.subn(r"type hiter struct \{.*?\n\}", full, s, count=1, flags=re.S)
assert n == 1, "hiter struct not found"
link.write_text(s)
m = d / "unsafe_map.go"
s = m.read_text()
old = """	return &UnsafeMapIterator{
		hiter:      mapiterinit(type2.rtype, *(*unsafe.Pointer)(obj)),"""
new = """	it := new(hiter)
	mapiterinit(type2.rtype, *(*unsafe.Pointer)(obj), it)
	return &UnsafeMapIterator{
		hiter:      it,"""
assert old in s, "UnsafeIterate not found"
m.write_text(s.replace(old, new))
PY

export GOPATH=$GOPATH_DIR GO111MODULE=off CGO_ENABLED=0 GOFLAGS= GOCACHE=$BUILD/gocache
cd "$TREE"

say "building openapi-gen"
go build -o "$BUILD/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen

say "generating pkg/generated/openapi"
INPUTS=$(grep -rl --include='*.go' --exclude='*_test.go' '+k8s:openapi-gen=' pkg staging/src \
  | xargs -n1 dirname | sort -u \
  | grep -v '/testdata' | grep -v '^pkg/generated/openapi$' \
  | sed -e 's#^staging/src/##' -e 's#^pkg/#k8s.io/kubernetes/pkg/#' | paste -sd, -)
"$BUILD/openapi-gen" --input-dirs "$INPUTS" \
  --output-package k8s.io/kubernetes/pkg/generated/openapi \
  --output-file-base zz_generated.openapi \
  --output-base "$GOPATH_DIR/src" \
  --go-header-file hack/boilerplate/boilerplate.generatego.txt \
  --report-filename "$BUILD/api-violations.txt" >&2

V=k8s.io/kubernetes/vendor/k8s.io/component-base/version
LDFLAGS="-s -w -X $V.gitVersion=$K8S_VERSION -X $V.gitMajor=1 -X $V.gitMinor=20 -X $V.gitTreeState=clean"
mkdir -p "$ASSETS.partial"
say "building kube-apiserver (the long step: about 5 minutes on 2 cores)"
go build -ldflags "$LDFLAGS" -o "$ASSETS.partial/kube-apiserver" ./cmd/kube-apiserver
say "building kubectl"
go build -ldflags "$LDFLAGS" -o "$ASSETS.partial/kubectl" ./cmd/kubectl

rm -rf "$ASSETS"
mv "$ASSETS.partial" "$ASSETS"
ln -sf "$(command -v etcd)" "$ASSETS/etcd"
say "cleaning up the build tree"
rm -rf "$GOPATH_DIR" "$BUILD/gocache"
say "control plane ready in $ASSETS"
echo "$ASSETS"
