namespace Streams.Integration.Tests;

/// <summary>
/// The availability goal of the fault tests, and the bound they fail on. Every stall is printed against the goal; the
/// assertion is twice the goal, because each test's whole cluster (ZooKeeper, bookies, controllers, segment stores,
/// the writer and the test runner) shares two cores: a stall that meets the goal on an idle machine measured 8.1 s on
/// a loaded one. A broken mechanism (a second keep-alive or session wait, a back-off that grows through a recovery,
/// two copies of a container fencing each other) stalls past the bound.
/// </summary>
internal static class FailoverGoal
{
    /// <summary>Writes resume within this long of any single failure.</summary>
    public static readonly TimeSpan Goal = TimeSpan.FromSeconds(5);

    /// <summary>What a fault test fails on.</summary>
    public static readonly TimeSpan Bound = 2 * Goal;

    /// <summary>Fails if <paramref name="stall"/> reached the bound; <paramref name="after"/> says after what.</summary>
    public static void Check(TimeSpan stall, string after) =>
        Assert.True(stall < Bound, $"Writes stalled {stall.TotalSeconds:F2} s {after} (goal {Goal.TotalSeconds} s; a test fails at {Bound.TotalSeconds} s).");
}
