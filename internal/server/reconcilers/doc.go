// Package reconcilers is the server role's reconcilers, one file each:
//
//   - SpendingCapReconciler (spendingcap*.go) evaluates SpendingCaps from
//     the usage store, marks what a Hard cap stops, fires threshold alerts,
//     and keeps the running totals gateways are answered with.
//   - InvitationReconciler (invitation.go) sends Members their invitations.
//   - KeyExpiryReconciler (keyexpiry.go) warns of API keys about to expire.
//   - PriceReconciler (prices.go) keeps the server's price list in line with
//     the Organization.
//   - KeyOwnerReconciler (keyowners.go) records who owns each key ID.
//
// They take what they need of the server as small interfaces (PriceSource,
// PriceSink) and never import package server, which wires them.
package reconcilers
