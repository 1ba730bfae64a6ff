# Builds one node image of this stack as a Hetzner Cloud snapshot: Ubuntu 24.04 with
# containerd, kubeadm, kubelet and kubectl of one Kubernetes version, labelled
# caph-image-name=<image_name> so the operator and CAPH find it. Run once per
# nodeImages entry of stack.yaml, for example:
#   packer init images/hcloud.pkr.hcl
#   HCLOUD_TOKEN=... packer build -var kubernetes_version=1.34.1 \
#     -var image_name=ubuntu-2404-kube-v1.34.1 images/hcloud.pkr.hcl
# (`kaasctl stack build` prints the command for every image.)
packer {
  required_plugins {
    hcloud = {
      source  = "github.com/hetznercloud/hcloud"
      version = ">= 1.6.0"
    }
  }
}

variable "kubernetes_version" {
  type        = string
  description = "Full Kubernetes version, such as 1.34.1."
}

variable "image_name" {
  type        = string
  description = "The nodeImages[].name the snapshot is labelled with (caph-image-name)."
}

variable "location" {
  type    = string
  default = "fsn1"
}

source "hcloud" "node" {
  image         = "ubuntu-24.04"
  location      = var.location
  server_type   = "cx22"
  ssh_username  = "root"
  snapshot_name = var.image_name
  snapshot_labels = {
    "caph-image-name" = var.image_name
  }
}

build {
  sources = ["source.hcloud.node"]

  provisioner "shell" {
    environment_vars = ["KUBERNETES_VERSION=${var.kubernetes_version}"]
    inline = [
      "set -eu",
      "export DEBIAN_FRONTEND=noninteractive",
      "apt-get update && apt-get install -y apt-transport-https ca-certificates curl gpg containerd",
      "mkdir -p /etc/containerd && containerd config default | sed 's/SystemdCgroup = false/SystemdCgroup = true/' > /etc/containerd/config.toml",
      "MINOR=$(echo $KUBERNETES_VERSION | cut -d. -f1,2)",
      "curl -fsSL https://pkgs.k8s.io/core:/stable:/v$MINOR/deb/Release.key | gpg --dearmor -o /etc/apt/keyrings/kubernetes.gpg",
      "echo \"deb [signed-by=/etc/apt/keyrings/kubernetes.gpg] https://pkgs.k8s.io/core:/stable:/v$MINOR/deb/ /\" > /etc/apt/sources.list.d/kubernetes.list",
      "apt-get update && apt-get install -y kubelet=$KUBERNETES_VERSION-* kubeadm=$KUBERNETES_VERSION-* kubectl=$KUBERNETES_VERSION-*",
      "apt-mark hold kubelet kubeadm kubectl",
      "printf 'overlay\\nbr_netfilter\\n' > /etc/modules-load.d/k8s.conf",
      "printf 'net.ipv4.ip_forward = 1\\nnet.bridge.bridge-nf-call-iptables = 1\\n' > /etc/sysctl.d/k8s.conf",
      "cloud-init clean --logs --machine-id",
    ]
  }
}
