package main

import (
	"context"
	"errors"
	"fmt"

	"atrium/internal/config"
	"atrium/internal/identity"
	"atrium/internal/kernel"
)

// admin grants or revokes the platform-admin right:
//
//	atrium admin grant EMAIL [flags]
//	atrium admin revoke EMAIL [flags]
//
// It works on the configured store directly, like migrate, so it needs no
// running node; it migrates first when ATRIUM_AUTO_MIGRATE is set, as serve
// would. The change is audited as a platform entry by the system actor.
func (m *Main) admin(ctx context.Context, args []string) error {
	if len(args) < 2 || (args[0] != "grant" && args[0] != "revoke") || args[1] == "" || args[1][0] == '-' {
		return errors.New("want: atrium admin grant|revoke EMAIL [flags]")
	}
	sub, email := args[0], args[1]
	cfg, err := config.Load(args[2:], m.Getenv)
	if err != nil {
		return err
	}
	db, err := openForMaintenance(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx = kernel.WithActor(ctx, kernel.SystemActor)
	if err := identity.SetPlatformAdmin(ctx, db, email, sub == "grant"); err != nil {
		return err
	}
	if sub == "grant" {
		fmt.Fprintf(m.Stdout, "%s is a platform admin\n", email)
	} else {
		fmt.Fprintf(m.Stdout, "%s is not a platform admin\n", email)
	}
	return nil
}
