//go:build tools

// Package tools pins etcdutl beside etcd: the backup tests restore snapshots with it
// (`etcdutl snapshot restore`), as an operator restoring a cluster by hand would.
package tools

import _ "go.etcd.io/etcd/etcdutl/v3"
