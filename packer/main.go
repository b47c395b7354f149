// Command packer-plugin-unikernel is the Packer plugin: it registers the
// builder `unikernel` and the post-processors `unikernel-convert` and
// `unikernel-push`, and nothing else.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/plugin"

	"github.com/uniforge/packer-plugin-unikernel/packer/builder/unikernel"
	"github.com/uniforge/packer-plugin-unikernel/packer/post-processor/unikernel-convert"
	"github.com/uniforge/packer-plugin-unikernel/packer/post-processor/unikernel-push"
	"github.com/uniforge/packer-plugin-unikernel/packer/version"
)

func main() {
	pps := plugin.NewSet()
	pps.RegisterBuilder(plugin.DEFAULT_NAME, new(unikernel.Builder))
	pps.RegisterPostProcessor("convert", new(convert.PostProcessor))
	pps.RegisterPostProcessor("push", new(push.PostProcessor))
	pps.SetVersion(version.PluginVersion)
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
