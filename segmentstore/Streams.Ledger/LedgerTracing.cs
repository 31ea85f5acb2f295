using System.Diagnostics;

namespace Streams.Ledger;

/// <summary>The ledger client's spans (activity source "Streams.Ledger"): ledger recovery (fence, recover the tail, close).</summary>
public static class LedgerTracing
{
    public const string SourceName = "Streams.Ledger";

    public static readonly ActivitySource Source = new(SourceName);
}
