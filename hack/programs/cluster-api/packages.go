// Package crds names the Cluster API packages whose CRDs controller-gen generates, so that
// go mod tidy keeps their module at the pinned release.
package crds

import (
	_ "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta2"
	_ "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta2"
	_ "sigs.k8s.io/cluster-api/api/core/v1beta2"
)
