namespace Streams.Export.Tests;

public sealed class JsonFieldTests
{
    [Fact]
    public void A_field_list_takes_paths_with_optional_types()
    {
        var fields = JsonField.ParseList("customer.id:int64, price ,note:string,ok:bool,ratio:float64");

        Assert.Equal(
            [new JsonField("customer.id", JsonFieldType.Int64), new JsonField("price"), new JsonField("note", JsonFieldType.String), new JsonField("ok", JsonFieldType.Boolean), new JsonField("ratio", JsonFieldType.Float64)],
            fields);
    }

    [Theory]
    [InlineData("a:decimal", "unknown type 'decimal'")]
    [InlineData("a,,b", "empty name")]
    [InlineData("a..b", "empty name")]
    [InlineData("offset", "column every export has")]
    [InlineData("a,a:int64", "given twice")]
    public void A_bad_field_list_is_refused_saying_what_to_change(string text, string message)
    {
        Assert.Contains(message, Assert.Throws<ArgumentException>(() => JsonField.ParseList(text)).Message);
    }
}
