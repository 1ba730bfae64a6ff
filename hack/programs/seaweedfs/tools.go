//go:build tools

// Package tools pins SeaweedFS for hack/control-plane.sh, which builds its `weed` command.
package tools

import _ "github.com/seaweedfs/seaweedfs/weed"
