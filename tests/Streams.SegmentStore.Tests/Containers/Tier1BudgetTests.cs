using Microsoft.Extensions.Logging.Abstractions;
using Streams.SegmentStore.Containers;

namespace Streams.SegmentStore.Tests.Containers;

/// <summary>The Tier 1 budget (Tier1Budget.cs): when appends go ahead, wait, or are refused.</summary>
public sealed class Tier1BudgetTests
{
    private static Tier1Budget Budget(string? tier2, TimeSpan timeout) =>
        new(0, new StorageWriterOptions { Tier1Budget = 1000, BudgetTimeout = timeout }, tier2, NullLogger.Instance);

    [Fact]
    public void Without_a_tier2_the_budget_is_never_full()
    {
        var budget = Budget(tier2: null, TimeSpan.FromMilliseconds(1));
        budget.Add(1_000_000);
        Assert.False(budget.IsFull);
        Assert.Null(budget.Check(out var wait));
        Assert.False(wait);
        Assert.Equal(1_000_000, budget.Bytes);
    }

    [Fact]
    public async Task A_full_budget_makes_appends_wait_then_refuses_them_after_its_timeout_and_frees_them_when_released()
    {
        var budget = Budget("file:///tier2", TimeSpan.FromMilliseconds(200));
        budget.Add(999);
        Assert.Null(budget.Check(out var wait));
        Assert.False(wait);

        budget.Add(1);
        Assert.True(budget.IsFull);
        Assert.Null(budget.Check(out wait));
        Assert.True(wait);

        await Task.Delay(300);
        var refused = budget.Check(out wait);
        Assert.Equal(OutcomeStatus.ContainerUnavailable, refused!.Value.Status);
        Assert.Contains("Tier 2", refused.Value.Message, StringComparison.Ordinal);

        budget.Release(500);
        Assert.True(budget.UnderPressure);
        Assert.Null(budget.Check(out wait));
        Assert.False(wait);

        budget.Reset(0);
        Assert.False(budget.UnderPressure);
    }
}
