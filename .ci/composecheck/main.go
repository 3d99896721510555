// Command composecheck loads docker-compose.yml (with .env, and every
// profile) with compose-go, the loader of Docker Compose v2, which checks
// the file against the current Compose Specification schema, and then
// checks what the schema cannot: the services a depends_on names exist and
// the conditions are ones Compose knows. It is a module of its own, so the
// project's go.mod does not carry Compose's dependencies.
//
//	cd .ci/composecheck && go run . ../../docker-compose.yml
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: composecheck docker-compose.yml")
		os.Exit(2)
	}
	if err := check(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
}

func check(file string) error {
	dir := filepath.Dir(file)
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(dir),
		cli.WithEnvFiles(filepath.Join(dir, ".env")),
		cli.WithDotEnv,
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		return err
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		return err
	}
	conditions := map[string]bool{
		types.ServiceConditionStarted:               true,
		types.ServiceConditionHealthy:               true,
		types.ServiceConditionCompletedSuccessfully: true,
	}
	for name, svc := range p.Services {
		for dep, d := range svc.DependsOn {
			if _, ok := p.Services[dep]; !ok {
				return fmt.Errorf("service %s depends on %s, which does not exist", name, dep)
			}
			if !conditions[d.Condition] {
				return fmt.Errorf("service %s: depends_on %s: unknown condition %q", name, dep, d.Condition)
			}
			if d.Condition == types.ServiceConditionHealthy && p.Services[dep].HealthCheck == nil {
				return fmt.Errorf("service %s waits for %s to be healthy, which has no health check", name, dep)
			}
		}
		for _, port := range svc.Ports {
			if port.HostIP == "" || port.HostIP == "0.0.0.0" || port.HostIP == "::" || port.HostIP == "[::]" {
				return fmt.Errorf("service %s publishes port %d on every interface; give it ${PUBLISH_ADDRESS}", name, port.Target)
			}
		}
		if svc.Logging == nil || svc.Logging.Options["max-size"] == "" {
			return fmt.Errorf("service %s has no log rotation (logging: max-size)", name)
		}
	}
	fmt.Printf("%s: %d services, valid against the Compose Specification (compose-go)\n", file, len(p.Services))
	return nil
}
