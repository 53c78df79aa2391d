function names = fields(s)
% MATLAB's undocumented alias of fieldnames, used by addMissingFieldsWithDefault.
names = fieldnames(s);
end
