function tf = istable(x)
% Octave 7 has no table class. Our mtable stands in for a MATLAB table
% (what parquetread returns); a struct is not a table.
tf = isa(x, 'mtable');
end
