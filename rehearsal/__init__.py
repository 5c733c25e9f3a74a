"""The parent's first boot rehearsed on one machine: contracts of the tools only EC2 or Nitro has."""
