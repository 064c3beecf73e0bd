package tenancy_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/tenancy/policy"
)

func TestTeams(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx, res := b.as(b.owner, policy.Owner)
		design, err := b.svc.CreateTeam(ctx, res, "  Design ")
		if err != nil || design.Name != "Design" {
			t.Fatalf("create: %+v %v", design, err)
		}
		for _, dup := range []string{"design", "DESIGN", "Design"} {
			_, err := b.svc.CreateTeam(ctx, res, dup)
			wantCode(t, err, kernel.CodeConflict)
		}
		_, err = b.svc.CreateTeam(ctx, res, "")
		wantCode(t, err, kernel.CodeInvalid)
		ops, err := b.svc.CreateTeam(ctx, res, "Ops")
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.svc.RenameTeam(ctx, res, ops.ID, "dEsIgN")
		wantCode(t, err, kernel.CodeConflict)
		renamed, err := b.svc.RenameTeam(ctx, res, ops.ID, "Operations")
		if err != nil || renamed.Name != "Operations" {
			t.Fatalf("rename: %+v %v", renamed, err)
		}
		if _, err := b.svc.RenameTeam(ctx, res, design.ID, "design"); err != nil {
			t.Fatalf("a team changes the case of its own name: %v", err)
		}
		list, err := b.svc.ListTeams(ctx, res, uuid.Nil, 10)
		if err != nil || len(list) != 2 || list[0].ID != design.ID || list[1].Name != "Operations" {
			t.Fatalf("list: %+v %v", list, err)
		}
		page, err := b.svc.ListTeams(ctx, res, list[0].ID, 10)
		if err != nil || len(page) != 1 || page[0].ID != ops.ID {
			t.Fatalf("second page: %+v %v", page, err)
		}
		_, err = b.svc.GetTeam(ctx, res, kernel.NewID())
		wantCode(t, err, kernel.CodeNotFound)
		if err := b.svc.DeleteTeam(ctx, res, ops.ID); err != nil {
			t.Fatal(err)
		}
		wantCode(t, b.svc.DeleteTeam(ctx, res, ops.ID), kernel.CodeNotFound)
		if _, err := b.svc.CreateTeam(ctx, res, "Ops"); err != nil {
			t.Fatalf("the name of a deleted team is free: %v", err)
		}
		assertAudited(t, b, "team.created", "team.renamed", "team.deleted")
	})
}

func TestTeamMembers(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ada := b.person(t, "ada@example.com", true)
		bob := b.person(t, "bob@example.com", true)
		outsider := b.person(t, "outsider@example.com", true)
		for _, id := range []uuid.UUID{ada, bob} {
			if _, err := b.svc.AddMember(context.Background(), b.ws, id, policy.Member); err != nil {
				t.Fatal(err)
			}
		}
		ctx, res := b.as(b.owner, policy.Owner)
		team, err := b.svc.CreateTeam(ctx, res, "Design")
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []uuid.UUID{ada, bob, b.owner} {
			if _, err := b.svc.AddTeamMember(ctx, res, team.ID, id); err != nil {
				t.Fatal(err)
			}
		}
		_, err = b.svc.AddTeamMember(ctx, res, team.ID, ada)
		wantCode(t, err, kernel.CodeConflict)
		_, err = b.svc.AddTeamMember(ctx, res, team.ID, outsider)
		wantCode(t, err, kernel.CodeInvalid)
		_, err = b.svc.AddTeamMember(ctx, res, kernel.NewID(), ada)
		wantCode(t, err, kernel.CodeNotFound)

		got, err := b.svc.GetTeam(ctx, res, team.ID)
		if err != nil || got.MemberCount != 3 {
			t.Fatalf("get: %+v %v", got, err)
		}
		// Removing a member from the workspace takes them out of its teams.
		if err := b.svc.RemoveMember(ctx, res, bob); err != nil {
			t.Fatal(err)
		}
		members, err := b.svc.ListTeamMembers(ctx, res, team.ID, uuid.Nil, 10)
		if err != nil || len(members) != 2 {
			t.Fatalf("members after removing bob from the workspace: %+v %v", members, err)
		}
		for _, m := range members {
			if m.UserID == bob {
				t.Fatal("bob is still in the team")
			}
		}
		page, err := b.svc.ListTeamMembers(ctx, res, team.ID, members[0].UserID, 1)
		if err != nil || len(page) != 1 || page[0].UserID != members[1].UserID {
			t.Fatalf("second page: %+v %v", page, err)
		}

		if err := b.svc.RemoveTeamMember(ctx, res, team.ID, ada); err != nil {
			t.Fatal(err)
		}
		wantCode(t, b.svc.RemoveTeamMember(ctx, res, team.ID, ada), kernel.CodeNotFound)
		if role, err := b.svc.RoleOf(context.Background(), b.ws, ada); err != nil || role != policy.Member {
			t.Fatalf("leaving a team left the workspace: %q %v", role, err)
		}

		// Members read teams and may not change them.
		memberCtx, memberRes := b.as(ada, policy.Member)
		if _, err := b.svc.GetTeam(memberCtx, memberRes, team.ID); err != nil {
			t.Fatalf("a member reads a team: %v", err)
		}
		if _, err := b.svc.ListTeamMembers(memberCtx, memberRes, team.ID, uuid.Nil, 10); err != nil {
			t.Fatalf("a member lists a team: %v", err)
		}
		_, err = b.svc.CreateTeam(memberCtx, memberRes, "Mine")
		wantCode(t, err, kernel.CodeForbidden)
		_, err = b.svc.AddTeamMember(memberCtx, memberRes, team.ID, ada)
		wantCode(t, err, kernel.CodeForbidden)
		wantCode(t, b.svc.DeleteTeam(memberCtx, memberRes, team.ID), kernel.CodeForbidden)

		// Deleting the team takes its memberships with it.
		if err := b.svc.DeleteTeam(ctx, res, team.ID); err != nil {
			t.Fatal(err)
		}
		_, err = b.svc.ListTeamMembers(ctx, res, team.ID, uuid.Nil, 10)
		wantCode(t, err, kernel.CodeNotFound)
		assertAudited(t, b, "team.member_added", "team.member_removed")
	})
}
