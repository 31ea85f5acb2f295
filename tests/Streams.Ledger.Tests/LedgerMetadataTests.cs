namespace Streams.Ledger.Tests;

/// <summary>Ledger node names (one form for ledgers, their marks and their locks) and the striping rule.</summary>
public sealed class LedgerMetadataTests
{
    [Fact]
    public void A_ledger_name_reads_back_as_its_id_and_other_names_are_refused()
    {
        Assert.Equal("L0000000042", LedgerMetadata.NameOf(42));
        Assert.Equal("/ledgers/L0000000042", LedgerMetadata.PathOf(42));
        Assert.Equal(42, LedgerMetadata.IdOf(LedgerMetadata.PathOf(42)));
        Assert.True(LedgerMetadata.TryParseName(LedgerMetadata.NameOf(long.MaxValue), out var largest));
        Assert.Equal(long.MaxValue, largest);

        foreach (var name in new[] { "", "L", "X0000000001", "L-1", "L+1", "L 1", "L00000000x1", "l0000000001" })
        {
            Assert.False(LedgerMetadata.TryParseName(name, out _), $"'{name}' read as a ledger name.");
        }

        Assert.Throws<FormatException>(() => LedgerMetadata.IdOf("/elsewhere/L0000000042"));
        Assert.Throws<FormatException>(() => LedgerMetadata.IdOf("/ledgers/locks"));
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 2)]
    [InlineData(3, 3)]
    [InlineData(5, 3)]
    public void A_position_is_in_an_entrys_write_set_exactly_when_the_write_set_names_it(int ensembleSize, int writeQuorum)
    {
        var ensemble = Enumerable.Range(0, ensembleSize).Select(i => $"b{i}").ToList();
        for (long entry = 0; entry < 3 * ensembleSize; entry++)
        {
            var writeSet = LedgerMetadata.WriteSet(ensemble, entry, writeQuorum);
            Assert.Equal(writeQuorum, writeSet.Count);
            Assert.Equal(ensemble[(int)(entry % ensembleSize)], writeSet[0]);
            for (var position = 0; position < ensembleSize; position++)
            {
                Assert.Equal(writeSet.Contains(ensemble[position]), LedgerMetadata.InWriteSet(position, entry, ensembleSize, writeQuorum));
            }
        }
    }
}
