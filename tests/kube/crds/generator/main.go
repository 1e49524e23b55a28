// Command generator prints KubeVirt's own CustomResourceDefinitions for the kinds
// hotplug-guard reads or writes, as KubeVirt's virt-operator builds them (names,
// scope, short names, subresources, printer columns and openAPI schemas), as YAML.
//
// Run it through `python -m tests.kube.crds`, which pins the KubeVirt release.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"
	"sigs.k8s.io/yaml"
)

func main() {
	constructors := []func() (*extv1.CustomResourceDefinition, error){
		components.NewVirtualMachineCrd,
		components.NewVirtualMachineInstanceCrd,
		components.NewVirtualMachineInstanceMigrationCrd,
		components.NewKubeVirtCrd,
	}
	for _, construct := range constructors {
		crd, err := construct()
		if err != nil {
			fail(err)
		}
		document, err := manifest(crd)
		if err != nil {
			fail(err)
		}
		fmt.Printf("---\n%s", document)
	}
}

// manifest renders a CRD as a manifest to create: without the status and the
// zero creationTimestamp that Go's marshalling of an unsaved object carries.
func manifest(crd *extv1.CustomResourceDefinition) ([]byte, error) {
	raw, err := json.Marshal(crd)
	if err != nil {
		return nil, err
	}
	var object map[string]interface{}
	if err := json.Unmarshal(raw, &object); err != nil {
		return nil, err
	}
	delete(object, "status")
	if metadata, ok := object["metadata"].(map[string]interface{}); ok {
		delete(metadata, "creationTimestamp")
	}
	return yaml.Marshal(object)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}
