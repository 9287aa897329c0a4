"""The strategy's decisions: entry phases, stop/target/size of a trade, exit rules, weight learning,
and the numbers they decide by (`params.StrategyParams`)."""
