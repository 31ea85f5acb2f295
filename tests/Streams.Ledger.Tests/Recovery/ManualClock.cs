namespace Streams.Ledger.Tests.Recovery;

/// <summary>A clock the test moves by hand (timers are not needed by the audits it drives).</summary>
internal sealed class ManualClock : TimeProvider
{
    private DateTimeOffset _now = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}
